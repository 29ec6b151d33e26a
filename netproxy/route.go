package netproxy

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Route is an upstream route: a listener (see Proxy.ServeRoute) on which the command sends
// plain HTTP requests, as to a local server, and which the proxy forwards to URL, over
// verified TLS for https, with Credential set. It suits clients that take a base URL (such
// as ANTHROPIC_BASE_URL) and need no CA of cordon's.
type Route struct {
	// Name names the route in audit events and errors. Required.
	Name string
	// URL is the upstream's base URL: https (or http), a host, an optional port and an
	// optional base path; no user info, query or fragment. A request for /v1/x goes to
	// URL's path joined with /v1/x. Required.
	URL string
	// Credential is set on every request of the route, replacing any copy the client sent;
	// its Hosts are ignored. Defaults to none.
	Credential *Credential
	// PathToken, if set, must be the first segment of every request's path ("/TOKEN/v1/x"),
	// and is removed before forwarding; requests without it get 403. For a listener that
	// processes other than the command can reach (on the host's loopback). Defaults to ""
	// (no token: the listener must be reachable only from inside the sandbox).
	PathToken string
}

// route is a validated Route.
type route struct {
	Route
	base *url.URL
	dst  target
	rule string
}

func newRoute(r Route) (*route, error) {
	if r.Name == "" {
		return nil, errors.New("a route needs a name")
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, fmt.Errorf("route %s: invalid URL", r.Name)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("route %s: the URL must be https:// or http://, a host and a path", r.Name)
	}
	dst, err := originTarget(u)
	if err != nil {
		return nil, fmt.Errorf("route %s: %v", r.Name, err)
	}
	if r.Credential != nil {
		if err := checkCredential(r.Credential, false); err != nil {
			return nil, fmt.Errorf("route %s: %v", r.Name, err)
		}
		if u.Scheme == "http" {
			c := *r.Credential
			c.AllowPlainHTTP = true // the policy asked for this plain-HTTP upstream by name
			r.Credential = &c
		}
	}
	if strings.ContainsAny(r.PathToken, "/?#% ") {
		return nil, fmt.Errorf("route %s: the path token must be one path segment", r.Name)
	}
	def := uint16(443)
	if u.Scheme == "http" {
		def = 80
	}
	base := &url.URL{Scheme: u.Scheme, Host: dst.hostHeader(def), Path: strings.TrimSuffix(u.Path, "/")}
	return &route{Route: r, base: base, dst: dst, rule: fmt.Sprintf("upstream %q", r.Name)}, nil
}

// ServeRoute serves the upstream route named name on l until l or the Proxy is closed, and
// returns ErrClosed after Close, or the listener's error; l is closed when ServeRoute
// returns. A route's listener carries no proxy token: keep it where only the command can
// reach it, or set Route.PathToken.
func (p *Proxy) ServeRoute(name string, l net.Listener) error {
	rt := p.routes[name]
	if rt == nil {
		_ = l.Close()
		return fmt.Errorf("%w: no route %q", ErrConfig, name)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = l.Close()
		return ErrClosed
	}
	p.lns[l] = struct{}{}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serveRoute(w, r, rt) }),
		ReadHeaderTimeout: p.cfg.HeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		ErrorLog:          p.stdLogger(),
	}
	p.servers[srv] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.lns, l)
		delete(p.servers, srv)
		p.mu.Unlock()
		_ = l.Close()
	}()
	err := srv.Serve(&limitListener{Listener: l, p: p})
	if p.ctx.Err() != nil || errors.Is(err, http.ErrServerClosed) {
		return ErrClosed
	}
	return fmt.Errorf("netproxy: route %s: accept on %s: %w", name, l.Addr(), err)
}

// limitListener takes one of the proxy's connection slots per accepted connection and
// tracks it for Close.
type limitListener struct {
	net.Listener
	p *Proxy
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.p.sem <- struct{}{}:
	case <-l.p.ctx.Done():
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.p.sem
		return nil, err
	}
	if !l.p.track(c) {
		_ = c.Close()
		<-l.p.sem
		return nil, net.ErrClosed
	}
	return &slotConn{Conn: c, p: l.p}, nil
}

// slotConn gives its slot back when closed.
type slotConn struct {
	net.Conn
	p    *Proxy
	once sync.Once
}

func (c *slotConn) Close() error {
	c.once.Do(func() {
		c.p.untrack(c.Conn)
		<-c.p.sem
	})
	return nil
}

// serveRoute forwards one request of a route.
func (p *Proxy) serveRoute(w http.ResponseWriter, r *http.Request, rt *route) {
	client := r.RemoteAddr
	out, err := rt.target(r.URL)
	switch {
	case errors.Is(err, errRouteToken):
		p.audit.write(&event{Event: "auth_failed", Proto: "route", Route: rt.Name, Client: client})
		writeText(w, http.StatusForbidden, nil,
			"cordon: this upstream route needs the URL it was given (its first path segment is a token)\n")
		return
	case err != nil:
		p.audit.write(&event{Event: "bad_request", Proto: "route", Route: rt.Name, Client: client, Status: http.StatusBadRequest, Error: err.Error()})
		writeText(w, http.StatusBadRequest, nil, "cordon: "+err.Error()+"\n")
		return
	}
	if r.Method == http.MethodConnect {
		writeText(w, http.StatusMethodNotAllowed, nil, "cordon: an upstream route is not a proxy\n")
		return
	}
	if v := p.decideDeny(rt.dst); v != nil {
		e := &event{Proto: "route", Route: rt.Name, Client: client, Method: r.Method, Status: http.StatusForbidden}
		p.refuse(e, rt.dst, *v)
		writeText(w, http.StatusForbidden, http.Header{"X-Cordon-Block": {v.reason}},
			fmt.Sprintf("cordon blocked %s %s\nreason: %s\nto allow it: %s\n", r.Method, rt.dst, v.reason, v.fix))
		return
	}
	r.URL = out
	p.serveRelay(w, r, relay{proto: "route", client: client, dst: rt.dst, scheme: rt.base.Scheme, rule: rt.rule,
		route: rt.Name, routeCred: rt.Credential})
}

var (
	errRouteToken  = errors.New("the route's path token is missing")
	errRouteTarget = errors.New("the request target has a space or a control character")
)

// target returns the upstream URL of a request for u on the route: the route's scheme and
// host always, its base path joined with u's path, u's query. With a path token, u's path
// must start with it (errRouteToken otherwise), and it is removed.
func (rt *route) target(u *url.URL) (*url.URL, error) {
	path, raw := u.Path, u.RawPath
	if badTarget(u) {
		return nil, errRouteTarget
	}
	if rt.PathToken != "" {
		rest, slash := strings.CutPrefix(path, "/")
		tok, rest, _ := strings.Cut(rest, "/")
		if !slash || subtle.ConstantTimeCompare([]byte(tok), []byte(rt.PathToken)) != 1 {
			return nil, errRouteToken
		}
		path = "/" + rest
		if raw != "" {
			if _, r, found := strings.Cut(strings.TrimPrefix(raw, "/"), "/"); found {
				raw = "/" + r
			} else {
				raw = ""
			}
		}
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
		raw = ""
	}
	out := &url.URL{Scheme: rt.base.Scheme, Host: rt.base.Host, Path: rt.base.Path + path, RawQuery: u.RawQuery}
	if raw != "" {
		out.RawPath = rt.base.EscapedPath() + raw
	}
	return out, nil
}

// badTarget reports whether a request target has bytes that the request line cannot carry:
// forwarded, they would let a client write a request line of its own choosing upstream.
func badTarget(u *url.URL) bool {
	return strings.ContainsFunc(u.RawPath+u.RawQuery+u.Path, func(c rune) bool { return c < ' ' || c == 0x7f }) ||
		strings.ContainsAny(u.RawPath+u.RawQuery, " ")
}

// decideDeny applies the deny list alone: an upstream route is itself the rule that allows
// its destination, but a deny rule still beats it.
func (p *Proxy) decideDeny(t target) *verdict {
	for _, d := range p.cfg.Deny {
		if d.Match(t.host, t.port) {
			return &verdict{
				rule:   fmt.Sprintf("network.deny %q", d.String()),
				reason: fmt.Sprintf("%s matches the network.deny rule %q", t, d.String()),
				fix:    fmt.Sprintf("remove %q from network.deny (deny rules beat allow rules)", d.String()),
			}
		}
	}
	return nil
}
