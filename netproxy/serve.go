package netproxy

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// serveConn serves one client connection: it tells SOCKS5 from HTTP by the first byte.
func (p *Proxy) serveConn(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(p.cfg.HeaderTimeout))
	ic := &idleConn{Conn: c, act: newActivity(p.cfg.IdleTimeout), fixed: true}
	lim := &limitReader{r: ic, n: -1}
	br := bufio.NewReaderSize(lim, bufSlack)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	switch first[0] {
	case 0x05:
		p.serveSOCKS(c, br, lim)
	case 0x04:
		// SOCKS4 has no authentication and no names worth the risk: "request rejected".
		_, _ = c.Write([]byte{0x00, 0x5b, 0, 0, 0, 0, 0, 0})
	case 0x16:
		p.cfg.Logger.Debug("netproxy: client started TLS; the proxy URL must be http://, not https://", "client", c.RemoteAddr())
	default:
		s := &session{p: p, conn: c, ic: ic, lim: lim, br: br, client: c.RemoteAddr().String()}
		s.bw = bufio.NewWriterSize(ic, 4096)
		s.serve()
	}
}

// session is one HTTP client connection: a series of requests, each decided on its own.
type session struct {
	p      *Proxy
	conn   net.Conn // the client connection
	ic     *idleConn
	lim    *limitReader
	br     *bufio.Reader
	bw     *bufio.Writer
	client string
	up     *upstream // the upstream connection kept alive from the previous request
}

// serve reads and answers requests until the client goes away, a request asks to close,
// or a request cannot be answered in a way that keeps the byte stream in step.
func (s *session) serve() {
	defer s.dropUpstream()
	for first := true; ; first = false {
		if !first {
			// Between requests: wait up to the idle timeout for the next one to start, then
			// give it the header timeout.
			s.ic.fixed = true
			_ = s.conn.SetReadDeadline(time.Now().Add(s.p.cfg.IdleTimeout))
			if _, err := s.br.Peek(1); err != nil {
				return
			}
			_ = s.conn.SetReadDeadline(time.Now().Add(s.p.cfg.HeaderTimeout))
		}
		s.ic.fixed = true
		req, err := readRequest(s.br, s.lim, s.p.cfg.MaxHeaderBytes, nil)
		if err != nil {
			s.badRequest(err)
			return
		}
		s.ic.fixed = false
		s.ic.resume()
		_ = s.conn.SetReadDeadline(time.Time{})
		if !s.p.authorized(req.Header.Get("Proxy-Authorization")) {
			s.p.audit.write(&event{Event: "auth_failed", Proto: protoOf(req), Client: s.client})
			s.reply(req, http.StatusProxyAuthRequired, http.Header{"Proxy-Authenticate": {`Basic realm="cordon"`}},
				"cordon: this proxy needs the credentials of the proxy URL it was given (HTTP_PROXY).\n")
			return
		}
		if req.Method == http.MethodConnect {
			s.connect(req)
			return
		}
		if !s.forward(req) {
			return
		}
	}
}

func protoOf(req *request) string {
	if req.Method == http.MethodConnect {
		return "connect"
	}
	return "http"
}

// authorized checks a Proxy-Authorization header: Basic, user "cordon", the token.
func (p *Proxy) authorized(h string) bool {
	if p.cfg.NoAuth {
		return true
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return false
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	return ok && p.checkCredentials(user, pass)
}

func (p *Proxy) checkCredentials(user, pass string) bool {
	okUser := subtle.ConstantTimeCompare([]byte(user), []byte("cordon"))
	okPass := subtle.ConstantTimeCompare([]byte(pass), []byte(p.cfg.Token))
	return okUser&okPass == 1
}

// badRequest answers a request that could not be read, and audits it unless the client
// simply went away.
func (s *session) badRequest(err error) {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isTimeout(err) || errors.Is(err, errIdle) {
		return
	}
	status, msg := http.StatusBadRequest, err.Error()
	switch {
	case errors.Is(err, errHeaderTooBig):
		status = http.StatusRequestHeaderFieldsTooLarge
		msg = fmt.Sprintf("request header larger than %d bytes (proxy.max_header_bytes)", s.p.cfg.MaxHeaderBytes)
	case errors.Is(err, errNotProxyForm):
		msg = "this is cordon's proxy: send requests with an absolute http:// URI, or CONNECT"
	case errors.Is(err, errBadFraming):
		status = http.StatusNotImplemented
		if strings.Contains(err.Error(), "both") || strings.Contains(err.Error(), "differing") || strings.Contains(err.Error(), "HTTP/1.0") {
			status = http.StatusBadRequest
		}
	}
	s.p.audit.write(&event{Event: "bad_request", Proto: "http", Client: s.client, Status: status, Error: msg})
	s.reply(nil, status, nil, "cordon: "+msg+"\n")
}

// block answers a refused request with 403, the reason and the fix.
func (s *session) block(req *request, t target, v *verdict) bool {
	h := http.Header{"X-Cordon-Block": {oneLine(v.reason)}}
	body := fmt.Sprintf("cordon blocked %s %s\nreason: %s\n", req.Method, t, v.reason)
	if v.fix != "" {
		body += "to allow it: " + v.fix + "\n"
	}
	return s.reply(req, http.StatusForbidden, h, body)
}

// fail answers a request whose destination could not be reached with 502 or 504.
func (s *session) fail(req *request, err error) bool {
	status, msg := http.StatusBadGateway, err.Error()
	var ue *upstreamError
	if errors.As(err, &ue) {
		status = ue.status
	} else if errors.Is(err, errIdle) {
		status, msg = http.StatusGatewayTimeout, fmt.Sprintf("the upstream sent nothing for %s (proxy.idle_timeout)", s.p.cfg.IdleTimeout)
	}
	return s.reply(req, status, http.Header{"X-Cordon-Error": {oneLine(msg)}}, "cordon: "+msg+"\n")
}

// reply writes a small response generated by the proxy. It keeps the connection (and
// reports true) only if the request's body was read to its end or can be within a small
// budget, so that the next request starts where the client thinks it does.
func (s *session) reply(req *request, status int, h http.Header, body string) bool {
	keep := req != nil && !req.Close && req.Method != http.MethodConnect && status != http.StatusProxyAuthRequired
	if keep && !complete(req.Body) {
		// Never read an upload the client is waiting to be told to send.
		if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
			keep = false
		} else {
			s.ic.stopReads(time.Now().Add(time.Second))
			n, _ := io.CopyN(io.Discard, req.Body, 256<<10)
			keep = complete(req.Body) && n < 256<<10
		}
	}
	body = s.p.redact.String(body)
	fmt.Fprintf(s.bw, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(s.bw, "%s: %s\r\n", k, s.p.redact.String(v))
		}
	}
	fmt.Fprintf(s.bw, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n", len(body))
	if !keep {
		s.bw.WriteString("Connection: close\r\n")
	}
	s.bw.WriteString("\r\n")
	if req == nil || req.Method != http.MethodHead {
		s.bw.WriteString(body)
	}
	if err := s.bw.Flush(); err != nil {
		return false
	}
	if !keep {
		lingerClose(s.conn)
	}
	return keep
}

// lingerClose half-closes c and reads for a moment before the caller closes it, so that
// unread request bytes do not make the kernel reset the connection before the client has
// read the response.
func lingerClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	_ = cw.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.CopyN(io.Discard, c, 256<<10)
}

// peekBuffered returns the bytes br holds without consuming them.
func peekBuffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

// oneLine makes text safe for a header value.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// connect serves a CONNECT request: decide, dial, answer 200, then tunnel.
func (s *session) connect(req *request) {
	e := &event{Proto: "connect", Client: s.client}
	if req.mismatch != "" {
		s.refuseMismatch(req, e)
		return
	}
	v := s.p.decide(req.dst)
	if !v.allow {
		s.p.refuse(e, req.dst, v)
		s.block(req, req.dst, &v)
		return
	}
	if s.p.icpt != nil && s.p.icpt.covers(req.dst) {
		s.intercept(req, e, v)
		return
	}
	up, refusal, err := s.p.openAllowed(s.p.ctx, e, req.dst, v)
	switch {
	case refusal != nil:
		s.block(req, req.dst, refusal)
		return
	case errors.Is(err, ErrClosed):
		return
	case err != nil:
		s.fail(req, err)
		return
	}
	defer s.p.untrack(up)
	if _, err := io.WriteString(s.conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	start := time.Now()
	// Bytes the client sent after its request head go first. The buffers of the HTTP
	// reader and writer are dropped: a tunnel is kept for long, and there are many.
	head := bytes.Clone(peekBuffered(s.br))
	s.br, s.bw, s.lim = nil, nil, nil
	upB, downB, terr := s.p.tunnel(s.conn, head, up, nil)
	s.p.auditClose(e, start, upB, downB, terr)
}

// auditClose audits the end of a connection to a destination.
func (p *Proxy) auditClose(e *event, start time.Time, up, down int64, err error) {
	e.Event, e.Decision, e.Rule, e.Reason = "close", "", "", ""
	e.BytesUp, e.BytesDown = up, down
	e.Duration = time.Since(start).Milliseconds()
	e.Error = ""
	if err != nil && !errors.Is(err, net.ErrClosed) {
		e.Error = err.Error()
	}
	p.audit.write(e)
}

// refuseMismatch refuses a request whose Host header and target disagree.
func (s *session) refuseMismatch(req *request, e *event) bool {
	v := verdict{
		rule:   "Host header mismatch",
		reason: req.mismatch,
		fix:    "send the same host and port in the request URI and the Host header",
	}
	e.Method = req.Method
	s.p.refuse(e, req.dst, v)
	return s.block(req, req.dst, &v)
}
