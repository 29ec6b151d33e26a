package netproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The requests the proxy terminates itself (in intercepted TLS tunnels and on upstream
// routes) are forwarded with net/http: an http.Transport whose dialer is the proxy's own
// checked dial (decide, resolve, classify, dial the checked address), verifying the
// upstream's certificate against Config.UpstreamRoots, and an httputil.ReverseProxy that
// streams responses as they come.

// refusalError is a destination refused when the transport dialed it.
type refusalError struct {
	t target
	v verdict
}

func (e *refusalError) Error() string { return e.v.reason }

// trackedConn is an upstream connection of the transport: Close also forgets it.
type trackedConn struct {
	net.Conn
	p    *Proxy
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.p.untrack(c.Conn) })
	return nil
}

func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// newTransport returns the transport of terminated requests. It never consults the
// environment's proxy settings and never follows redirects (a ReverseProxy does not).
func (p *Proxy) newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            p.transportDial,
		DialTLSContext:         p.transportDialTLS,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		ResponseHeaderTimeout:  p.cfg.IdleTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// transportDial connects to addr ("host:port") as the proxy connects anywhere: the
// resolved addresses are checked, and only checked addresses are dialed. The decision on
// the destination itself was made before the request got here.
func (p *Proxy) transportDial(ctx context.Context, _, addr string) (net.Conn, error) {
	t, err := parseAuthority(addr, 0)
	if err != nil {
		return nil, err
	}
	conn, ap, refusal, err := p.dial(ctx, t)
	if refusal != nil {
		e := &event{Proto: protoFromContext(ctx), Client: clientFromContext(ctx)}
		if ap.IsValid() {
			e.Addr = ap.String()
		}
		p.refuse(e, t, *refusal)
		return nil, &refusalError{t, *refusal}
	}
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: conn, p: p}, nil
}

// transportDialTLS is transportDial and a TLS handshake that verifies the upstream's
// certificate for the destination's name against Config.UpstreamRoots.
func (p *Proxy) transportDialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := p.transportDial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	t, _ := parseAuthority(addr, 0)
	tc := tls.Client(conn, &tls.Config{
		ServerName: t.host,
		RootCAs:    p.cfg.UpstreamRoots,
		NextProtos: []string{"h2", "http/1.1"},
		MinVersion: tls.VersionTLS12,
	})
	hctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, tlsUpstreamError(t, err)
	}
	return tc, nil
}

func tlsUpstreamError(t target, err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	msg := fmt.Sprintf("TLS handshake with %s failed: %v", t, err)
	switch {
	case errors.As(err, &unknown):
		msg = fmt.Sprintf("the certificate of %s is not signed by a trusted authority", t)
	case errors.As(err, &hostname):
		msg = fmt.Sprintf("the certificate of %s is not valid for %s", t, t.host)
	case errors.As(err, &invalid):
		msg = fmt.Sprintf("the certificate of %s is invalid: %v", t, invalid)
	case errors.As(err, &verify):
		msg = fmt.Sprintf("the certificate of %s could not be verified: %v", t, verify.Err)
	case isTimeout(err):
		return &upstreamError{http.StatusGatewayTimeout, socksTTLExpired, fmt.Sprintf("TLS handshake with %s timed out", t)}
	}
	return &upstreamError{http.StatusBadGateway, socksFailure, msg}
}

type ctxKey int

const (
	ctxProto ctxKey = iota
	ctxClient
	ctxTunnel
	ctxState
)

func protoFromContext(ctx context.Context) string {
	s, _ := ctx.Value(ctxProto).(string)
	return s
}

func clientFromContext(ctx context.Context) string {
	s, _ := ctx.Value(ctxClient).(string)
	return s
}

// relay is one terminated request on its way out.
type relay struct {
	proto     string // "https" (intercepted) or "route"
	client    string // the client's address
	dst       target // where it goes
	scheme    string // "https" or "http"
	rule      string // what allowed dst
	route     string // the route's name, for proto "route"
	routeCred *Credential
}

// relayState collects what happened to one request, for its audit event.
type relayState struct {
	mu     sync.Mutex
	addr   string
	err    string
	status int
}

// statusWriter remembers the status written. ResponseController finds the underlying
// writer's Flush and Hijack through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// relayHeaders removes the hop-by-hop headers of a terminated request, keeping what the
// ReverseProxy needs to forward a protocol upgrade and a "TE: trailers", so that hooks see
// the headers that will be sent.
func relayHeaders(h http.Header) {
	upgrade := ""
	if httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		upgrade = h.Get("Upgrade")
	}
	trailers := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	removeHopHeaders(h)
	if upgrade != "" {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", upgrade)
	}
	if trailers {
		h.Set("Te", "trailers")
	}
}

// serveRelay forwards r to rl.dst: credentials and hooks first, then the ReverseProxy.
// r.URL must already be the outgoing URL.
func (p *Proxy) serveRelay(w http.ResponseWriter, r *http.Request, rl relay) {
	if !p.handlerStart() {
		writeText(w, http.StatusServiceUnavailable, nil, "cordon: the proxy is shutting down\n")
		return
	}
	defer p.handlers.Done()
	e := &event{Event: "request", Proto: rl.proto, Client: rl.client, Method: r.Method,
		Host: rl.dst.host, Port: rl.dst.port, Rule: rl.rule, Route: rl.route}
	start := time.Now()
	r.Host = r.URL.Host
	r.RequestURI = ""
	relayHeaders(r.Header)

	var t touched
	if f := p.applyCredentials(r.Context(), r, rl.dst, rl.scheme == "https", rl.routeCred, &t); f != nil {
		t.fill(e)
		p.hookFailed(w, r, e, rl.dst, f)
		return
	}
	t.fill(e)

	st := &relayState{}
	ctx := context.WithValue(r.Context(), ctxState, st)
	ctx = context.WithValue(ctx, ctxProto, rl.proto)
	ctx = context.WithValue(ctx, ctxClient, rl.client)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if a, ok := info.Conn.RemoteAddr().(*net.TCPAddr); ok {
				st.mu.Lock()
				st.addr = a.AddrPort().String()
				st.mu.Unlock()
			}
		},
	})
	sw := &statusWriter{ResponseWriter: w}
	// Deferred: a response cut short makes the ReverseProxy panic with
	// http.ErrAbortHandler, which the server turns into a closed connection.
	defer func() {
		st.mu.Lock()
		e.Addr, e.Error = st.addr, st.err
		if st.status != 0 {
			e.Status = st.status
		}
		st.mu.Unlock()
		if e.Status == 0 {
			e.Status = sw.status
		}
		e.Duration = time.Since(start).Milliseconds()
		p.audit.write(e)
	}()
	p.rproxy.ServeHTTP(sw, r.WithContext(ctx))
}

// handlerStart registers a request handler of the proxy's HTTP servers, so that Close can
// wait for it; it reports false once the proxy is closed.
func (p *Proxy) handlerStart() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.handlers.Add(1)
	return true
}

// hookFailed answers a request that a hook refused (its status and reason) or failed (502).
func (p *Proxy) hookFailed(w http.ResponseWriter, r *http.Request, e *event, dst target, f *hookFailure) {
	msg := p.hookMessage(f)
	if f.deny != nil {
		v := verdict{rule: fmt.Sprintf("plugin %q", f.hook), reason: msg}
		e.Event = "request"
		e.Status = f.status
		p.refuse(e, dst, v)
		writeText(w, f.status, http.Header{"X-Cordon-Block": {msg}}, "cordon blocked "+r.Method+" "+dst.String()+"\nreason: "+msg+"\n")
		return
	}
	e.Status, e.Error = f.status, msg
	p.audit.write(e)
	p.cfg.Logger.Warn("netproxy: plugin failure", "plugin", f.hook, "dest", dst.String(), "err", msg)
	writeText(w, f.status, http.Header{"X-Cordon-Error": {msg}}, "cordon: "+msg+"\n")
}

// writeText writes a small response generated by the proxy.
func writeText(w http.ResponseWriter, status int, h http.Header, body string) {
	for k, vs := range h {
		for _, v := range vs {
			w.Header().Add(k, oneLine(v))
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// newReverseProxy returns the ReverseProxy of terminated requests: it flushes every write
// (server-sent events arrive as they are sent), forwards the request's own X-Forwarded-*
// headers untouched and adds none.
func (p *Proxy) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
			for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
		},
		Transport:     p.transport,
		FlushInterval: -1,
		ErrorLog:      p.stdLogger(),
		ErrorHandler:  p.relayError,
	}
}

// slogWriter turns the standard logger's lines (from net/http) into debug logs.
type slogWriter struct {
	l interface{ Debug(string, ...any) }
}

func (w slogWriter) Write(b []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(b)))
	return len(b), nil
}

// relayError answers a request that could not be forwarded.
func (p *Proxy) relayError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(ctxState).(*relayState)
	set := func(status int, msg string) {
		if st != nil {
			st.mu.Lock()
			st.status, st.err = status, msg
			st.mu.Unlock()
		}
	}
	if r.Context().Err() != nil {
		set(499, "the client went away")
		return
	}
	var (
		re *refusalError
		ue *upstreamError
	)
	switch {
	case errors.As(err, &re):
		reason := p.redact.String(re.v.reason)
		set(http.StatusForbidden, reason)
		body := fmt.Sprintf("cordon blocked %s %s\nreason: %s\n", r.Method, re.t, reason)
		if re.v.fix != "" {
			body += "to allow it: " + re.v.fix + "\n"
		}
		writeText(w, http.StatusForbidden, http.Header{"X-Cordon-Block": {reason}}, body)
		return
	case errors.As(err, &ue):
		msg := p.redact.String(ue.msg)
		set(ue.status, msg)
		writeText(w, ue.status, http.Header{"X-Cordon-Error": {msg}}, "cordon: "+msg+"\n")
		return
	}
	status := http.StatusBadGateway
	if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	msg := p.redact.String(fmt.Sprintf("%s: %v", r.URL.Host, err))
	set(status, msg)
	writeText(w, status, http.Header{"X-Cordon-Error": {msg}}, "cordon: "+msg+"\n")
}

// originTarget returns the destination of an outgoing URL.
func originTarget(u *url.URL) (target, error) {
	def := uint16(443)
	if u.Scheme == "http" {
		def = 80
	}
	return parseAuthority(u.Host, def)
}
