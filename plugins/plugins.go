// Package plugins runs cordon's WebAssembly credential plugins: small modules that see an
// outgoing request on its way through the proxy and add credentials to it (a bearer token, an
// AWS Signature Version 4), or refuse it (a read-only rule for an API).
//
// A plugin never holds a secret. It asks the host to put a secret into a header
// (header_set_secret) or to compute with it (HMAC-SHA256 through key handles that stay in the
// host), and the host does so only for requests to the hosts the plugin is bound to. The guest
// ABI is versioned and documented in docs/plugin-abi.md; plugin authors use the Go SDK in
// package plugins/sdk and the guide in docs/plugins.md.
//
// Use: create one [Host] per run, [Host.Load] each plugin once (the module is compiled once,
// with an on-disk compilation cache), then call [Plugin.Apply] for every request the proxy has
// already allowed whose host matches the plugin. Apply is safe for concurrent use; instances
// are pooled. A plugin that traps, runs out of time or memory, or breaks the ABI fails only
// that request, with an error that names the plugin; the proxy must then answer 502 and never
// send the request.
//
//	host, err := plugins.NewHost(plugins.HostConfig{Logger: log})
//	p, err := host.Load(ctx, plugins.PluginConfig{Name: "aws", Path: "aws-sigv4.wasm", ...})
//	res, err := p.Apply(ctx, req)
//	switch {
//	case err != nil:       // 502, naming the plugin; do not send req
//	case res.Deny != nil:  // answer res.Deny.Status with res.Deny.Reason; do not send req
//	default:               // send req: its headers now carry the credential
//	}
package plugins

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/cordonsh/cordon/hostmatch"
)

// ABIVersion is the plugin ABI version this host speaks. A module declares its version by
// exporting a function named "cordon_abi_version_1" (for version 1).
const ABIVersion = 1

// Defaults for the zero fields of a PluginConfig.
const (
	DefaultTimeout      = 100 * time.Millisecond
	DefaultMemoryLimit  = 32 << 20
	DefaultMaxBodyBytes = 1 << 20
	maxModuleBytes      = 64 << 20
	minMemoryLimit      = 4 << 20
	maxMemoryLimit      = 1 << 30
	initTimeoutFloor    = 1 * time.Second
)

// HostConfig configures a Host.
type HostConfig struct {
	// CacheDir is the directory of wazero's on-disk compilation cache, which holds native code
	// that cordon maps and runs: it must be writable only by the user running cordon, and the
	// sandboxed command must never be able to write to it. NewHost refuses a directory that
	// other users can write to. Defaults to [DefaultCacheDir].
	CacheDir string
	// NoDiskCache keeps compiled modules in memory only. Defaults to false.
	NoDiskCache bool
	// Logger receives the plugins' own log lines (rate-limited, secrets redacted) and the
	// host's diagnostics. Defaults to a logger that discards.
	Logger *slog.Logger
}

// DefaultCacheDir returns the default compilation cache directory: "cordon/wasm" under the
// user cache directory ($XDG_CACHE_HOME or ~/.cache on Linux, ~/Library/Caches on macOS).
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("plugins: user cache directory: %w", err)
	}
	return filepath.Join(d, "cordon", "wasm"), nil
}

// Host compiles and runs plugins. Create one per run; it is safe for concurrent use.
type Host struct {
	cache    wazero.CompilationCache
	cacheDir string
	logger   *slog.Logger

	mu      sync.Mutex
	plugins map[*Plugin]struct{}
	closed  bool
}

// NewHost returns a Host. It creates the compilation cache directory (mode 0700) if needed.
func NewHost(cfg HostConfig) (*Host, error) {
	h := &Host{logger: cfg.Logger, plugins: map[*Plugin]struct{}{}}
	if h.logger == nil {
		h.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.NoDiskCache {
		h.cache = wazero.NewCompilationCache()
		return h, nil
	}
	dir := cfg.CacheDir
	if dir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("plugins: cache directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("plugins: create cache directory: %w", err)
	}
	if err := checkCacheDir(dir); err != nil {
		return nil, fmt.Errorf("plugins: cache directory %s: %w", dir, err)
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plugins: open cache directory %s: %w", dir, err)
	}
	h.cache, h.cacheDir = cache, dir
	return h, nil
}

// CacheDir returns the compilation cache directory in use, or "" without a disk cache. The
// runtime must keep the sandboxed command from writing there.
func (h *Host) CacheDir() string { return h.cacheDir }

// Close closes every plugin loaded by h and the compilation cache.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	ps := h.plugins
	h.plugins = nil
	h.mu.Unlock()
	for p := range ps {
		_ = p.close(ctx)
	}
	return h.cache.Close(ctx)
}

// PluginConfig configures one plugin. The credentials engineer fills it from a policy entry:
//
//	[[plugin]]
//	name = "aws"
//	path = "aws-sigv4.wasm"
//	hosts = ["*.amazonaws.com"]
//	secrets = ["aws_secret_access_key", "aws_access_key_id"]
//	timeout = "50ms"
//	memory_limit = "32MiB"
//	[plugin.config]
//	region = "us-east-1"
type PluginConfig struct {
	// Name names the plugin in errors, logs and audit events. Required.
	Name string
	// Path is the .wasm file. Required unless Wasm is set.
	Path string
	// Wasm is the module itself; if set, Path is only used in messages.
	Wasm []byte
	// Hosts are the request hosts the plugin applies to; Apply refuses any other host, and
	// with it the plugin's secrets never reach another host. Required. If the plugin has
	// secrets, no pattern may be broader than an allow rule may be (see
	// hostmatch.Pattern.CheckAllow).
	Hosts []hostmatch.Pattern
	// Secrets maps each secret the plugin may use to its value, already resolved by the
	// caller. Load copies the values; they stay in host memory and never enter the guest.
	// Names are 1 to 64 of [A-Za-z0-9_.-]; values must not be empty. Defaults to none.
	Secrets map[string][]byte
	// Config is the plugin's configuration table, readable by the guest. Defaults to empty.
	Config map[string]string
	// Timeout limits each call into the plugin. Defaults to DefaultTimeout (100ms).
	Timeout time.Duration
	// MemoryLimit limits the plugin's linear memory, in bytes (rounded down to 64 KiB
	// pages); between 4 MiB and 1 GiB. Defaults to DefaultMemoryLimit (32 MiB).
	MemoryLimit uint64
	// MaxInstances bounds the instances run at once; further calls wait for a free one.
	// Defaults to twice GOMAXPROCS, at least 2.
	MaxInstances int
	// MaxBodyBytes bounds the request body the host buffers to hash for body_sha256; a larger
	// body is not hashed (the guest gets an error code) and is sent unchanged. Defaults to
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// AllowHTTP lets header_set_secret put secrets into plain-HTTP requests. Defaults to
	// false: a plugin that tries fails the request.
	AllowHTTP bool
}

// Result is what a plugin did to one request.
type Result struct {
	// Deny is set if the plugin refused the request: the proxy answers with Deny.Status and
	// Deny.Reason and does not send the request. The request is then left unchanged.
	Deny *Deny
	// Changes lists the headers the plugin changed, by name, with secrets shown as
	// "<secret NAME>" and values computed from secrets as "<signed with secret NAME>".
	// For logs, audit and `cordon plugin test`; the changes are already applied.
	Changes []HeaderChange
}

// Deny is a plugin's refusal of a request.
type Deny struct {
	Status int    // 400..599
	Reason string // for the client; at most 1 KiB, printable, secrets redacted
}

// HeaderChange is one header the plugin set, added to or removed. Before holds the values the
// request had, After the values it has now (redacted); After is empty if it was removed.
type HeaderChange struct {
	Name          string
	Before, After []string
}

// Plugin is one loaded plugin. It is safe for concurrent use.
type Plugin struct {
	host      *Host
	name      string
	path      string
	hosts     []hostmatch.Pattern
	secrets   map[string][]byte
	config    map[string]string
	timeout   time.Duration
	memLimit  uint64
	maxBody   int64
	allowHTTP bool
	logger    *slog.Logger
	limiter   *rateLimiter

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	pool     *pool
	mem      *memPool
	closed   atomic.Bool
	inFlight sync.RWMutex // held for reading by Apply; Close waits for it to zero secrets
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Hosts returns the host patterns the plugin is bound to.
func (p *Plugin) Hosts() []hostmatch.Pattern { return append([]hostmatch.Pattern(nil), p.hosts...) }

// Matches reports whether the plugin applies to a request for host:port. host must be
// canonical (see hostmatch.Canonical).
func (p *Plugin) Matches(host string, port uint16) bool {
	for _, pat := range p.hosts {
		if pat.Match(host, port) {
			return true
		}
	}
	return false
}

// Close waits for calls in flight to end (each ends within the plugin's time limit), then
// releases the plugin's instances and zeroes its copies of the secrets. Later calls fail with
// ErrClosed.
func (p *Plugin) Close(ctx context.Context) error {
	p.host.mu.Lock()
	delete(p.host.plugins, p)
	p.host.mu.Unlock()
	return p.close(ctx)
}

func (p *Plugin) close(ctx context.Context) error {
	if p.closed.Swap(true) {
		return nil
	}
	p.pool.close(ctx)
	// Wait for calls in flight (each ends within its time limit) before closing the runtime:
	// it frees memories and code that a running guest would still use.
	p.inFlight.Lock()
	defer p.inFlight.Unlock()
	err := p.rt.Close(ctx)
	p.mem.close()
	for _, v := range p.secrets {
		clear(v)
	}
	return err
}

// Apply runs the plugin on req, a request the proxy has already allowed, whose URL carries
// the scheme ("http", or "https" for TLS-intercepted requests) and the destination host.
//
// On success the plugin's header changes are applied to req.Header, unless Result.Deny is set,
// in which case req is left as it was. On error req.Header is unchanged and the request must
// not be sent; the error names the plugin and wraps one of ErrHostNotBound, ErrFault,
// ErrTimeout, ErrMemoryLimit, ErrSecretNotGranted, ErrInsecureSecret, ErrFailed or ErrClosed
// (or the context's error). The body is never changed, but if the plugin asked for its hash
// the host has buffered it (up to MaxBodyBytes) and req.Body reads the same bytes.
func (p *Plugin) Apply(ctx context.Context, req *http.Request) (Result, error) {
	p.inFlight.RLock()
	defer p.inFlight.RUnlock()
	if p.closed.Load() {
		return Result{}, p.errorf(ErrClosed, "")
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("plugin %q: %w", p.name, err)
	}
	c, err := newCall(p, req)
	if err != nil {
		return Result{}, err
	}
	defer c.wipe()
	inst, err := p.pool.get(ctx)
	if err != nil {
		return Result{}, err
	}
	if p.closed.Load() {
		p.pool.put(inst) // closes it
		return Result{}, p.errorf(ErrClosed, "")
	}
	keep, err := inst.run(ctx, c)
	if keep {
		p.pool.put(inst)
	} else {
		p.pool.discard(ctx, inst)
	}
	if err != nil {
		if p.closed.Load() {
			return Result{}, p.errorf(ErrClosed, "")
		}
		p.logger.Warn("plugin call failed", "error", err)
		return Result{}, err
	}
	return c.commit(), nil
}

// errorf returns an error naming the plugin that wraps sentinel.
func (p *Plugin) errorf(sentinel error, format string, args ...any) error {
	if format == "" {
		return fmt.Errorf("plugin %q: %w", p.name, sentinel)
	}
	return fmt.Errorf("plugin %q: %w: %s", p.name, sentinel, fmt.Sprintf(format, args...))
}
