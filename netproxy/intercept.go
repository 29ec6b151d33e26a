package netproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cordonsh/cordon/hostmatch"
)

// TLS interception. A CONNECT tunnel to a host that has a credential rule or a hook is not
// passed through opaquely: the proxy answers 200, completes the client's TLS handshake with
// a certificate for the CONNECT host minted by the run's own CA (see authority), and serves
// the decrypted HTTP/1.1 or HTTP/2 requests itself, forwarding each over a new, verified TLS
// connection (see serveRelay). Every other tunnel stays opaque.

// interceptPeek bounds the wait for a client's first byte in a tunnel to an intercepted
// host: a TLS client speaks first at once; a client that stays silent is waiting for a
// server that speaks first (and gets an opaque tunnel).
const interceptPeek = 3 * time.Second

// interceptor holds the CA and the server of intercepted tunnels.
type interceptor struct {
	ca    *authority
	hosts []hostmatch.Pattern
	tls   *tls.Config
	srv   *http.Server
	ln    *chanListener

	tunnels sync.Map // *tls.Conn -> *tunnelInfo
}

// tunnelInfo is what the request handler of an intercepted tunnel needs to know.
type tunnelInfo struct {
	dst    target
	client string
	rule   string
}

// covers reports whether tunnels to t are intercepted.
func (ic *interceptor) covers(t target) bool {
	for _, h := range ic.hosts {
		if h.Match(t.host, t.port) {
			return true
		}
	}
	return false
}

func (p *Proxy) newInterceptor(hosts []hostmatch.Pattern) (*interceptor, error) {
	ca, err := newAuthority(hosts, time.Now())
	if err != nil {
		return nil, err
	}
	ic := &interceptor{ca: ca, hosts: hosts, ln: newChanListener()}
	ic.tls = &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		// The SNI check runs on every ClientHello, resumed sessions included.
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cc, ok := hello.Conn.(*clientConn)
			if !ok {
				return nil, errors.New("internal error: unknown connection")
			}
			if !sniMatches(hello.ServerName, cc.dst) {
				cc.sni.Store(&hello.ServerName)
				return nil, errSNIMismatch
			}
			return nil, nil
		},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			cc, ok := hello.Conn.(*clientConn)
			if !ok {
				return nil, errors.New("internal error: unknown connection")
			}
			return ca.leaf(cc.dst.host)
		},
	}
	ic.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serveIntercepted),
		ReadHeaderTimeout: p.cfg.HeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		ErrorLog:          p.stdLogger(),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if info, ok := ic.tunnels.Load(c); ok {
				ctx = context.WithValue(ctx, ctxTunnel, info)
			}
			return ctx
		},
	}
	return ic, nil
}

var errSNIMismatch = errors.New("the TLS server name does not match the CONNECT host")

// sniMatches reports whether a ClientHello's server name names the tunnel's host. Clients
// send no server name for IP addresses.
func sniMatches(sni string, t target) bool {
	if t.addr.IsValid() {
		return sni == ""
	}
	c, err := hostmatch.Canonical(sni)
	return err == nil && c == t.host
}

// clientConn is the client side of an intercepted tunnel: bytes already read go first, the
// bytes each way are counted, and Close (by the TLS layer or the HTTP server) ends the
// tunnel.
type clientConn struct {
	net.Conn
	head        []byte
	dst         target
	sni         atomic.Pointer[string] // the server name of a refused ClientHello
	read, wrote atomic.Int64
	once        sync.Once
	done        chan struct{}
}

func (c *clientConn) Read(b []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		c.read.Add(int64(n))
		return n, nil
	}
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	return n, err
}

func (c *clientConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.wrote.Add(int64(n))
	return n, err
}

func (c *clientConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// chanListener hands the intercepted TLS connections to the interception server.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// intercept serves a CONNECT tunnel to an intercepted destination, already allowed by v.
func (s *session) intercept(req *request, e *event, v verdict) {
	p, ic := s.p, s.p.icpt
	if _, err := io.WriteString(s.conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	head := bytes.Clone(peekBuffered(s.br))
	s.br, s.bw, s.lim = nil, nil, nil
	start := time.Now()

	// A TLS client sends its ClientHello at once; anything else (ssh to the same host,
	// a server-first protocol) gets the opaque tunnel, without credentials.
	if len(head) == 0 {
		_ = s.conn.SetReadDeadline(time.Now().Add(interceptPeek))
		var b [1]byte
		n, err := s.conn.Read(b[:])
		_ = s.conn.SetReadDeadline(time.Time{})
		if n == 1 {
			head = b[:]
		} else if !isTimeout(err) {
			return
		}
	}
	if len(head) == 0 || head[0] != 0x16 {
		up, refusal, err := p.openAllowed(p.ctx, e, req.dst, v)
		if refusal != nil || err != nil {
			return
		}
		defer p.untrack(up)
		upB, downB, terr := p.tunnel(s.conn, head, up, nil)
		p.auditClose(e, start, upB, downB, terr)
		return
	}

	e.Event, e.Decision, e.Rule, e.Host, e.Port, e.Intercepted = "decision", "allow", v.rule, req.dst.host, req.dst.port, true
	p.audit.write(e)

	cc := &clientConn{Conn: s.conn, head: head, dst: req.dst, done: make(chan struct{})}
	tc := tls.Server(cc, ic.tls)
	hctx, cancel := context.WithTimeout(p.ctx, p.cfg.HeaderTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		s.interceptFailed(e, req.dst, cc, err)
		return
	}
	ic.tunnels.Store(tc, &tunnelInfo{dst: req.dst, client: s.client, rule: v.rule})
	defer ic.tunnels.Delete(tc)
	if !ic.ln.push(tc) {
		_ = tc.Close()
		return
	}
	select {
	case <-cc.done:
	case <-p.ctx.Done():
		_ = tc.Close()
	}
	p.auditClose(e, start, cc.read.Load(), cc.wrote.Load(), nil)
}

// interceptFailed records a failed TLS handshake with the client of an intercepted tunnel.
func (s *session) interceptFailed(e *event, dst target, cc *clientConn, err error) {
	p := s.p
	e.Intercepted = true
	if sni := cc.sni.Load(); sni != nil {
		v := verdict{
			rule:   "TLS server name mismatch",
			reason: fmt.Sprintf("the tunnel is for %s but the TLS client asked for %q", dst, clip(*sni)),
			fix:    "connect with the same host name in CONNECT and in TLS (SNI)",
		}
		p.refuse(e, dst, v)
		return
	}
	if isTimeout(err) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || p.ctx.Err() != nil {
		return
	}
	msg := err.Error()
	if strings.Contains(msg, "remote error") {
		// The client refused cordon's certificate: it does not trust the run's CA.
		v := verdict{
			rule:   "TLS interception: the client does not trust cordon's CA",
			reason: fmt.Sprintf("the client refused cordon's certificate for %s (%s)", dst, msg),
			fix:    "make the program trust the CA bundle named in SSL_CERT_FILE (see docs/credentials.md)",
		}
		p.refuse(e, dst, v)
		return
	}
	e.Event, e.Decision, e.Error = "intercept_failed", "", p.redact.String(msg)
	p.audit.write(e)
}

// serveIntercepted serves one request from an intercepted tunnel.
func (p *Proxy) serveIntercepted(w http.ResponseWriter, r *http.Request) {
	info, ok := r.Context().Value(ctxTunnel).(*tunnelInfo)
	if !ok {
		writeText(w, http.StatusInternalServerError, nil, "cordon: internal error: unknown tunnel\n")
		return
	}
	dst := info.dst
	// One host, one meaning: the request must be for the tunnel's host.
	if ht, err := parseAuthority(r.Host, 443); err != nil || ht != dst {
		v := verdict{
			rule:   "Host header mismatch",
			reason: fmt.Sprintf("the tunnel is for %s but the request names %q", dst, clip(r.Host)),
			fix:    "send the same host and port in CONNECT and in the Host header",
		}
		e := &event{Proto: "https", Client: info.client, Method: r.Method, Status: http.StatusForbidden}
		p.refuse(e, dst, v)
		writeText(w, http.StatusForbidden, http.Header{"X-Cordon-Block": {v.reason}},
			fmt.Sprintf("cordon blocked %s %s\nreason: %s\n", r.Method, dst, v.reason))
		return
	}
	if badTarget(r.URL) {
		e := &event{Event: "bad_request", Proto: "https", Client: info.client, Status: http.StatusBadRequest, Error: errRouteTarget.Error()}
		p.audit.write(e)
		writeText(w, http.StatusBadRequest, nil, "cordon: "+errRouteTarget.Error()+"\n")
		return
	}
	r.URL = &url.URL{Scheme: "https", Host: dst.hostHeader(443), Path: r.URL.Path, RawPath: r.URL.RawPath,
		RawQuery: r.URL.RawQuery}
	if r.URL.Path == "" {
		r.URL.Path = "/"
	}
	p.serveRelay(w, r, relay{proto: "https", client: info.client, dst: dst, scheme: "https", rule: info.rule})
}

// CACertPEM returns the PEM certificate of the run's interception CA, for the command to
// trust, or nil if the proxy intercepts nothing. Its key never leaves the proxy.
func (p *Proxy) CACertPEM() []byte {
	if p.icpt == nil {
		return nil
	}
	return bytes.Clone(p.icpt.ca.certPEM)
}
