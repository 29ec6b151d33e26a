// Package netproxy is cordon's egress proxy: one listener that serves HTTP forward proxying,
// CONNECT tunnels and SOCKS5, decides every destination against an allow list and a deny
// list, resolves names and dials exactly the address it checked, and writes audit events.
//
// How a destination is decided, in order:
//
//  1. The client must present the per-run token (see [Config.Token]); otherwise 407, or a
//     SOCKS5 authentication failure.
//  2. The host that will be dialed is canonicalized ([hostmatch.Canonical]). For plain HTTP the
//     request URI's host and the Host header must name the same host and port.
//  3. A match in Config.Deny refuses it; otherwise a match in Config.Allow lets it through;
//     otherwise it is refused. An IP literal is allowed only by an allow rule that names that
//     address: name patterns, even "*.example.com", never cover addresses.
//  4. The name is resolved with Config.Resolver and every address is classified. Loopback,
//     private, link-local (cloud metadata), shared, reserved, multicast, unique-local,
//     IPv4-in-IPv6 tunnel forms and the host's own addresses are refused unless
//     Config.AllowPrivate covers them. Only the addresses that pass are dialed, exactly as
//     checked, so a name cannot be re-resolved to something else in between.
//
// A refused HTTP request gets 403 with an X-Cordon-Block header and a body that names the
// host, the rule and the fix; a refused SOCKS5 request gets the matching reply code. Every
// decision and every finished connection is written to Config.Audit as one JSON line.
package netproxy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/cordonsh/cordon/hostmatch"
	"github.com/cordonsh/cordon/policy"
)

// Resolver looks up the addresses of a host name. *net.Resolver implements it.
type Resolver interface {
	// LookupNetIP returns the addresses of host; network is "ip".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens connections to destinations that passed every check. *net.Dialer implements
// it. address is always a numeric "IP:port" (IPv6 in brackets), never a name.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config configures a Proxy. The zero Config (with a Token) refuses every destination.
type Config struct {
	// Allow lists the destinations the proxy lets through. Defaults to none.
	Allow []hostmatch.Pattern
	// Deny lists destinations refused even if Allow matches. Defaults to none.
	Deny []hostmatch.Pattern
	// AllowPrivate lists the non-public ranges a destination may resolve to. Defaults to none:
	// every address that is not globally routable is refused.
	AllowPrivate []netip.Prefix

	// Token is the per-run proxy credential a client must present: HTTP clients as
	// "Proxy-Authorization: Basic" with user "cordon" and the token as password, SOCKS5
	// clients with the username/password method and the same pair. Required unless NoAuth.
	Token string
	// NoAuth lets clients in without a token. Only for a proxy that listens where no
	// untrusted process can connect. Defaults to false; New refuses a Config with both a
	// Token and NoAuth, or neither.
	NoAuth bool

	// MaxHeaderBytes bounds a request's header block (and a chunked body's trailers).
	// Defaults to policy.DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// HeaderTimeout bounds the time from accepting a connection, or from the first byte of
	// a keep-alive request, to the end of the request's header block or SOCKS5 handshake.
	// Defaults to policy.DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// DialTimeout bounds resolving and connecting to a destination. Defaults to
	// policy.DefaultDialTimeout.
	DialTimeout time.Duration
	// IdleTimeout closes a tunnel or an HTTP exchange after this long with no bytes moving
	// either way, and a keep-alive client connection after this long without a request.
	// Defaults to policy.DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConns bounds the client connections served at once over all listeners; further
	// connections wait in the listen backlog. Defaults to policy.DefaultMaxConns.
	MaxConns int

	// Resolver resolves destination names. Defaults to net.DefaultResolver.
	Resolver Resolver
	// Dialer connects to checked addresses. Defaults to a *net.Dialer.
	Dialer Dialer

	// PolicySource names where the allow list comes from, so that a block can say what to
	// change: a policy file path, or "flags" when only command-line flags set it. Defaults to
	// "" (no policy file: the fix names cordon.toml).
	PolicySource string
	// Audit receives one JSON line per decision and per finished connection (see
	// docs/proxy.md for the fields). Each line is one Write call. Defaults to nil: no audit.
	Audit io.Writer
	// Logger receives debug logs. Defaults to a logger that discards.
	Logger *slog.Logger

	// Credentials are the headers the proxy sets on requests to their hosts (see
	// Credential). CONNECT tunnels to their hosts are intercepted. Defaults to none.
	Credentials []Credential
	// Hooks see requests to their hosts after the credentials, and may change or refuse
	// them (see RequestHook). CONNECT tunnels to their hosts are intercepted. Defaults to
	// none.
	Hooks []RequestHook
	// Routes are the upstream routes, served by ServeRoute. Defaults to none.
	Routes []Route
	// UpstreamRoots verifies the certificates of the upstreams of intercepted requests and
	// of https routes. Defaults to nil: the system's roots.
	UpstreamRoots *x509.CertPool
	// Redactor removes secrets from everything the proxy writes: error responses, the audit
	// log, logs. The credentials' values are always redacted; this adds others (a plugin's
	// secrets). Defaults to nil.
	Redactor *Redactor
}

// Proxy serves connections on any number of listeners until closed. Its methods are safe
// for concurrent use.
type Proxy struct {
	cfg    Config
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	sem    chan struct{} // one slot per served client connection
	audit  *auditor
	local  func() []netip.Addr // the host's own addresses; replaced in tests

	redact    *Redactor
	hooks     []hook
	icpt      *interceptor // nil: nothing is intercepted
	routes    map[string]*route
	transport *http.Transport // for intercepted and routed requests
	rproxy    *httputil.ReverseProxy

	mu      sync.Mutex
	closed  bool
	lns     map[net.Listener]struct{}
	conns   map[io.Closer]struct{}
	servers map[*http.Server]struct{}
	blocked map[blockKey]*Blocked
	wg      sync.WaitGroup // Serve loops and connection goroutines
	// handlers counts the request handlers of the interception and route servers; Add
	// only under mu while not closed (see handlerStart).
	handlers sync.WaitGroup
}

// New validates cfg, fills in defaults and returns a Proxy that serves nothing until Serve.
func New(cfg Config) (*Proxy, error) {
	switch {
	case cfg.Token == "" && !cfg.NoAuth:
		return nil, fmt.Errorf("%w: a token is required", ErrConfig)
	case cfg.Token != "" && cfg.NoAuth:
		return nil, fmt.Errorf("%w: a token and NoAuth are exclusive", ErrConfig)
	case cfg.MaxHeaderBytes < 0, cfg.HeaderTimeout < 0, cfg.DialTimeout < 0, cfg.IdleTimeout < 0, cfg.MaxConns < 0:
		return nil, fmt.Errorf("%w: limits must not be negative", ErrConfig)
	}
	for _, a := range cfg.Allow {
		if err := a.CheckAllow(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = policy.DefaultMaxHeaderBytes
	}
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = policy.DefaultHeaderTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = policy.DefaultDialTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = policy.DefaultIdleTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = policy.DefaultMaxConns
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{KeepAlive: 30 * time.Second}
	}
	// Every secret the proxy holds is redacted from what it writes, logs included.
	secrets := map[string][]byte{}
	for i := range cfg.Credentials {
		c := &cfg.Credentials[i]
		if err := checkCredential(c, true); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		secrets[c.Name] = []byte(c.Value)
	}
	for _, r := range cfg.Routes {
		if r.Credential != nil {
			secrets[r.Credential.Name] = []byte(r.Credential.Value)
		}
	}
	redact := NewRedactor(secrets).merge(cfg.Redactor)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	} else {
		cfg.Logger = slog.New(redact.Handler(cfg.Logger.Handler()))
	}
	hooks := make([]hook, len(cfg.Hooks))
	for i, h := range cfg.Hooks {
		hooks[i] = hook{RequestHook: h, name: h.Name(), hosts: h.Hosts()}
		if hooks[i].name == "" || len(hooks[i].hosts) == 0 {
			return nil, fmt.Errorf("%w: a hook needs a name and hosts", ErrConfig)
		}
		for _, p := range hooks[i].hosts {
			if err := p.CheckAllow(); err != nil {
				return nil, fmt.Errorf("%w: hook %s: %v", ErrConfig, hooks[i].name, err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		cfg:     cfg,
		ctx:     ctx,
		cancel:  cancel,
		sem:     make(chan struct{}, cfg.MaxConns),
		audit:   &auditor{w: redact.Writer(cfg.Audit), log: cfg.Logger},
		redact:  redact,
		hooks:   hooks,
		routes:  map[string]*route{},
		lns:     map[net.Listener]struct{}{},
		conns:   map[io.Closer]struct{}{},
		servers: map[*http.Server]struct{}{},
		blocked: map[blockKey]*Blocked{},
	}
	if cfg.Audit == nil {
		p.audit.w = nil
	}
	for _, r := range cfg.Routes {
		rt, err := newRoute(r)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if p.routes[r.Name] != nil {
			cancel()
			return nil, fmt.Errorf("%w: route %q is defined twice", ErrConfig, r.Name)
		}
		p.routes[r.Name] = rt
	}
	var hosts []hostmatch.Pattern
	for _, c := range cfg.Credentials {
		hosts = append(hosts, c.Hosts...)
	}
	for _, h := range hooks {
		hosts = append(hosts, h.hosts...)
	}
	if len(hosts) > 0 {
		ic, err := p.newInterceptor(hosts)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("netproxy: %w", err)
		}
		p.icpt = ic
		p.servers[ic.srv] = struct{}{}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_ = ic.srv.Serve(ic.ln)
		}()
	}
	if len(hosts) > 0 || len(p.routes) > 0 {
		p.transport = p.newTransport()
		p.rproxy = p.newReverseProxy()
	}
	p.local = newLocalAddrs(cfg.Logger).get
	return p, nil
}

// stdLogger is a standard logger for net/http's servers: their lines become redacted debug
// logs.
func (p *Proxy) stdLogger() *log.Logger {
	return log.New(slogWriter{p.cfg.Logger}, "netproxy: ", 0)
}

// Serve accepts connections on l until l or the Proxy is closed, serving each in its own
// goroutine. It may be called for several listeners at once. It returns ErrClosed after
// Close, or the listener's error; l is closed when Serve returns.
func (p *Proxy) Serve(l net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = l.Close()
		return ErrClosed
	}
	p.lns[l] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.lns, l)
		p.mu.Unlock()
		_ = l.Close()
	}()

	var backoff time.Duration
	for {
		// Take a slot before accepting: at MaxConns, new clients wait in the backlog
		// instead of being accepted and starved.
		select {
		case p.sem <- struct{}{}:
		case <-p.ctx.Done():
			return ErrClosed
		}
		c, err := l.Accept()
		if err != nil {
			<-p.sem
			if p.ctx.Err() != nil {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAccept(err) {
				// Out of file descriptors and the like: wait and try again, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.cfg.Logger.Warn("netproxy: accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-p.ctx.Done():
					return ErrClosed
				}
			}
			return fmt.Errorf("netproxy: accept on %s: %w", l.Addr(), err)
		}
		backoff = 0
		if !p.track(c) {
			_ = c.Close()
			<-p.sem
			return ErrClosed
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-p.sem }()
			defer p.untrack(c)
			p.serveConn(c)
		}()
	}
}

// Close stops every listener and connection and returns once every goroutine of the Proxy
// has ended. Serve calls return ErrClosed. Close is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cancel()
	for l := range p.lns {
		_ = l.Close()
	}
	for c := range p.conns {
		_ = c.Close()
	}
	servers := p.servers
	p.servers = map[*http.Server]struct{}{}
	p.mu.Unlock()
	if p.icpt != nil {
		_ = p.icpt.ln.Close()
	}
	for srv := range servers {
		_ = srv.Close()
	}
	p.wg.Wait()
	// Their connections are closed: handlers end as soon as their reads and writes fail.
	p.handlers.Wait()
	if p.transport != nil {
		p.transport.CloseIdleConnections()
	}
	return nil
}

// URL returns the proxy URL, with the token, for a listener address such as
// "127.0.0.1:3128": what HTTP_PROXY, HTTPS_PROXY and ALL_PROXY should be set to. A SOCKS5
// client uses the same credentials with the scheme "socks5h".
func (p *Proxy) URL(addr string) string {
	if p.cfg.NoAuth {
		return "http://" + addr
	}
	return "http://cordon:" + p.cfg.Token + "@" + addr
}

// Blocked is one refused destination with the number of times it was refused.
type Blocked struct {
	// Host is the destination as "host:port".
	Host string
	// Rule is what refused it, such as `not in network.allow` or `network.deny "*.evil.com"`.
	Rule string
	// Fix says what would allow it, or "" if nothing in the policy can.
	Fix string
	// Count is how many requests or connections were refused.
	Count int
}

type blockKey struct{ host, rule string }

// Summary returns the refused destinations so far, most refused first (then by host).
func (p *Proxy) Summary() []Blocked {
	p.mu.Lock()
	out := make([]Blocked, 0, len(p.blocked))
	for _, b := range p.blocked {
		out = append(out, *b)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Rule < out[j].Rule
	})
	return out
}

// track registers a connection so that Close can close it. It reports false, and the caller
// must close c, if the Proxy is already closed.
func (p *Proxy) track(c io.Closer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (p *Proxy) untrack(c io.Closer) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// listenerAddrs returns the addresses the Proxy listens on, so that it never dials itself.
func (p *Proxy) listenerAddrs() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []netip.AddrPort
	for l := range p.lns {
		if a, ok := l.Addr().(*net.TCPAddr); ok {
			out = append(out, a.AddrPort())
		}
	}
	return out
}
