// Package sdk is the guest side of cordon's plugin ABI (version 1) for plugins written in Go.
//
// A plugin is a Go main package built for WASI as a reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o myplugin.wasm .
//
// It registers its request hook from an init function (a reactor's main is never called):
//
//	func init() {
//		sdk.Handle(func(r *sdk.Request) error {
//			if r.Method() != "GET" {
//				return r.Deny(403, "read-only")
//			}
//			return r.SetHeaderFromSecret("Authorization", "token", "Bearer {secret}")
//		})
//	}
//
//	func main() {}
//
// The hook runs once per request bound for the plugin's hosts. It reads the request, sets or
// removes headers, and may deny the request. Secrets are never visible to the plugin: the host
// fills them into headers ([Request.SetHeaderFromSecret]) and computes HMACs with them
// ([KeyFromSecret], [Key.Derive], [Key.HMAC]). Reading back a header set from a secret gives
// its template, with the secret written as "{secret:NAME}".
//
// If the hook returns an error, panics, or runs past its time or memory limit, the request
// fails closed: the proxy answers 502 and never sends it. See docs/plugins.md for a guide and
// docs/plugin-abi.md for the ABI underneath this package.
//
// The package builds on every platform so that tools work, but outside a wasip1 plugin every
// call returns [ErrNotPlugin].
package sdk

import (
	"errors"
	"strings"
	"unsafe"
)

// Errors returned by the functions of this package. They mirror the ABI's error codes.
var (
	ErrNotFound    = errors.New("sdk: not found")
	ErrInvalid     = errors.New("sdk: invalid argument")
	ErrForbidden   = errors.New("sdk: header may not be changed by a plugin")
	ErrLimit       = errors.New("sdk: over a host limit")
	ErrUnavailable = errors.New("sdk: unavailable")
	ErrNotPlugin   = errors.New("sdk: not running as a cordon plugin (build with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared)")
)

// ABI error codes (see docs/plugin-abi.md).
const (
	codeNotFound    = -1
	codeInvalid     = -2
	codeForbidden   = -3
	codeLimit       = -4
	codeUnavailable = -5
	codeNotPlugin   = -100 // returned by the stubs outside wasip1; never by the host
)

func codeErr(code int32) error {
	switch {
	case code >= 0:
		return nil
	case code == codeNotFound:
		return ErrNotFound
	case code == codeInvalid:
		return ErrInvalid
	case code == codeForbidden:
		return ErrForbidden
	case code == codeLimit:
		return ErrLimit
	case code == codeNotPlugin:
		return ErrNotPlugin
	}
	return ErrUnavailable
}

// Handler is a request hook. Returning a non-nil error fails the request closed; the error's
// text goes into the proxy's 502 answer and the log, so it must not quote secrets (the plugin
// never has them) and should say what went wrong.
type Handler func(r *Request) error

var handler Handler

// Handle registers the request hook. Call it from an init function.
func Handle(h Handler) { handler = h }

// Request is the request being handled. It is valid only during the hook call.
type Request struct{ _ [0]func() }

// Method returns the request method, such as "GET".
func (*Request) Method() string { s, _ := getString(rawRequestMethod); return s }

// Scheme returns "https" or "http".
func (*Request) Scheme() string { s, _ := getString(rawRequestScheme); return s }

// Host returns the destination host, canonical (lower case, punycode), without the port.
func (*Request) Host() string { s, _ := getString(rawRequestHost); return s }

// Port returns the destination port.
func (*Request) Port() int { return int(rawRequestPort()) }

// Path returns the path as it will be sent, percent-encoded ("/" at least).
func (*Request) Path() string { s, _ := getString(rawRequestPath); return s }

// Query returns the raw query without "?", as it will be sent.
func (*Request) Query() string { s, _ := getString(rawRequestQuery); return s }

// HeaderValues returns the values of a header (case-insensitive), or nil if absent. "Host"
// returns the Host header that will be sent. A value set from a secret reads as its
// template, with the secret written as "{secret:NAME}".
func (*Request) HeaderValues(name string) []string {
	s, err := getString(func(buf *byte, n uint32) int32 { return rawHeaderGet(name, buf, n) })
	if err != nil {
		return nil
	}
	return strings.Split(s, "\n")
}

// Header returns the first value of a header, or "" if absent.
func (r *Request) Header(name string) string {
	if v := r.HeaderValues(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// HeaderNames returns the names of the request's headers, canonical ("Content-Type") and
// sorted, including "Host".
func (*Request) HeaderNames() []string {
	s, err := getString(rawHeaderNames)
	if err != nil || s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// SetHeader replaces a header's values with value. Framing and proxy headers (Host,
// Content-Length, Transfer-Encoding, Connection, Proxy-*, ...) return ErrForbidden.
func (*Request) SetHeader(name, value string) error {
	return codeErr(rawHeaderSet(name, value))
}

// AddHeader adds a value to a header.
func (*Request) AddHeader(name, value string) error {
	return codeErr(rawHeaderAdd(name, value))
}

// RemoveHeader removes a header. Removing an absent header is not an error.
func (*Request) RemoveHeader(name string) error {
	return codeErr(rawHeaderRemove(name))
}

// SetHeaderFromSecret sets a header to template with the secret filled in by the host, for
// example ("Authorization", "github_token", "Bearer {secret}"). In the template "{secret}"
// stands for the named secret, "{secret:OTHER}" for another granted secret, and "{{" and
// "}}" for literal braces. The template must be a constant or built with [Template]: text
// taken from the request must never be pasted into it unescaped.
//
// Using a secret the plugin was not granted, or a secret on a plain-HTTP request (unless
// the policy allows it), fails the request.
func (*Request) SetHeaderFromSecret(name, secret, template string) error {
	return codeErr(rawHeaderSetSecret(name, secret, template))
}

// SetHeaderTemplate sets a header to a template built with [Template].
func (r *Request) SetHeaderTemplate(name string, t *Template) error {
	return r.SetHeaderFromSecret(name, "", t.String())
}

// Deny refuses the request with an HTTP status (400..599) and a reason for the client, and
// returns nil so that a hook can end with "return r.Deny(...)". A denied request is never
// sent, and header changes are discarded.
func (*Request) Deny(status int, reason string) error {
	if status < 400 || status > 599 {
		return ErrInvalid
	}
	return codeErr(rawDeny(int32(status), reason))
}

// BodySHA256 returns the SHA-256 of the request body, which the host reads and buffers; the
// plugin never sees the body itself. A body over the host's limit returns ErrLimit.
func (*Request) BodySHA256() ([32]byte, error) {
	var sum [32]byte
	err := codeErr(rawBodySHA256(&sum[0]))
	return sum, err
}

// Config returns the value of a key of the plugin's config table.
func Config(key string) (string, bool) {
	s, err := getString(func(buf *byte, n uint32) int32 { return rawConfigGet(key, buf, n) })
	return s, err == nil
}

// ConfigOr returns the value of a config key, or def if it is not set.
func ConfigOr(key, def string) string {
	if v, ok := Config(key); ok {
		return v
	}
	return def
}

// UnixNano returns the wall clock as nanoseconds since 1970-01-01 UTC. It is time.Now without
// package time, which would add about 300 KB to the module (and to every load of it).
func UnixNano() int64 { return unixNano() }

// Level is a log level.
type Level int32

// Log levels.
const (
	LevelDebug Level = iota
	LevelInfo
	LevelWarn
	LevelError
)

// Log writes a line to cordon's log. Lines are rate-limited and cut at 1 KiB; values the host
// derived from secrets are redacted.
func Log(l Level, msg string) { rawLog(int32(l), msg) }

// Debug, Info, Warn and Error log at their level.
func Debug(msg string) { Log(LevelDebug, msg) }
func Info(msg string)  { Log(LevelInfo, msg) }
func Warn(msg string)  { Log(LevelWarn, msg) }
func Error(msg string) { Log(LevelError, msg) }

// Template builds a template: literal text, escaped as needed, and secrets by name. Use it
// whenever a template contains text from the request.
//
//	var t sdk.Template
//	t.Text("AWS4-HMAC-SHA256 Credential=").Secret("aws_access_key_id").Text("/" + scope)
type Template struct{ b strings.Builder }

// Text appends literal text.
func (t *Template) Text(s string) *Template {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			t.b.WriteString("{{")
		case '}':
			t.b.WriteString("}}")
		default:
			t.b.WriteByte(s[i])
		}
	}
	return t
}

// Secret appends the secret name.
func (t *Template) Secret(name string) *Template {
	t.b.WriteString("{secret:")
	t.b.WriteString(name)
	t.b.WriteString("}")
	return t
}

// String returns the template text.
func (t *Template) String() string { return t.b.String() }

// Key is a handle to an HMAC key held by the host. Keys last until the hook returns.
type Key struct{ h int32 }

// KeyFromSecret makes a key from template with the secret filled in, e.g. for AWS SigV4
// KeyFromSecret("aws_secret_access_key", "AWS4{secret}").
func KeyFromSecret(secret, template string) (Key, error) {
	h := rawKeyFromSecret(secret, template)
	if h < 0 {
		return Key{}, codeErr(h)
	}
	return Key{h}, nil
}

// Derive returns a new host-held key HMAC-SHA256(k, data). The derived key, like k, never
// enters the plugin.
func (k Key) Derive(data []byte) (Key, error) {
	h := rawKeyHMAC(k.h, bytesString(data))
	if h < 0 {
		return Key{}, codeErr(h)
	}
	return Key{h}, nil
}

// HMAC returns HMAC-SHA256(k, data). The host redacts the result from logs and errors.
func (k Key) HMAC(data []byte) ([32]byte, error) {
	var sum [32]byte
	err := codeErr(rawHMAC(k.h, bytesString(data), &sum[0]))
	return sum, err
}

// SHA256Template returns the SHA-256 of a template with its secrets filled in by the host.
func SHA256Template(t *Template) ([32]byte, error) {
	var sum [32]byte
	err := codeErr(rawSHA256Template(t.String(), &sum[0]))
	return sum, err
}

// onRequest is called by the exported hook.
func onRequest() int32 {
	if handler == nil {
		fail("no request hook: call sdk.Handle from an init function")
		return 1
	}
	if err := handler(&Request{}); err != nil {
		fail(err.Error())
		return 1
	}
	return 0
}

func fail(msg string) { rawFail(msg) }

// scratch is the buffer host functions write into; a plugin runs single-threaded.
var scratch = make([]byte, 512)

// getString calls a host function that writes into a buffer, growing the buffer as asked.
func getString(f func(buf *byte, n uint32) int32) (string, error) {
	for {
		n := f(&scratch[0], uint32(len(scratch)))
		if n < 0 {
			return "", codeErr(n)
		}
		if int(n) <= len(scratch) {
			return string(scratch[:n]), nil
		}
		scratch = make([]byte, n)
	}
}

// bytesString passes a byte slice to the host as a string without copying; the host only
// reads it during the call.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
