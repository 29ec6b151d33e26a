package plugins

import "errors"

// Errors returned by [NewHost], [Host.Load] and [Plugin.Apply]; match them with errors.Is.
// Every error from Apply also names the plugin, so that a proxy can answer with a 502 that
// says which plugin failed.
var (
	// ErrConfig: a HostConfig or PluginConfig field is invalid.
	ErrConfig = errors.New("invalid plugin configuration")
	// ErrModule: the file is not a WebAssembly module cordon can run as a plugin (it does not
	// decode or compile, imports something the host does not provide, or was built as a
	// command rather than a reactor).
	ErrModule = errors.New("invalid plugin module")
	// ErrABIVersion: the module is built for a plugin ABI version this host does not speak,
	// or declares none.
	ErrABIVersion = errors.New("unsupported plugin ABI version")
	// ErrMissingExport: the module lacks an export the ABI requires.
	ErrMissingExport = errors.New("plugin lacks a required export")
	// ErrHostNotBound: Apply was called for a request whose host the plugin is not bound to.
	// The plugin did not run.
	ErrHostNotBound = errors.New("request host is not bound to the plugin")
	// ErrFault: the plugin trapped, exited, or broke the ABI (for example passed a pointer
	// outside its memory). The request must not be sent.
	ErrFault = errors.New("plugin fault")
	// ErrTimeout: the plugin ran past its time limit. The request must not be sent.
	ErrTimeout = errors.New("plugin timed out")
	// ErrMemoryLimit: the plugin ran out of memory under its memory limit. The request must
	// not be sent.
	ErrMemoryLimit = errors.New("plugin exceeded its memory limit")
	// ErrSecretNotGranted: the plugin asked for a secret its configuration does not grant.
	// The request must not be sent.
	ErrSecretNotGranted = errors.New("plugin used a secret it was not granted")
	// ErrInsecureSecret: the plugin tried to put a secret into a plain-HTTP request without
	// PluginConfig.AllowHTTP. The request must not be sent.
	ErrInsecureSecret = errors.New("plugin tried to send a secret over plain HTTP")
	// ErrFailed: the plugin's request hook reported a failure. The request must not be sent.
	ErrFailed = errors.New("plugin failed the request")
	// ErrClosed: the plugin or host is closed.
	ErrClosed = errors.New("plugin closed")
)
