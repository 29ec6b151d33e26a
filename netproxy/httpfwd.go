package netproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// upstream is an HTTP/1.1 connection to one destination, kept for the client's next
// request if that goes to the same destination.
type upstream struct {
	dst   target
	conn  net.Conn
	ic    *idleConn
	br    *bufio.Reader
	bw    *bufio.Writer
	e     *event // the decision that opened it, completed as its close event
	start time.Time
	reqs  int
}

// hookFailed answers a plain-HTTP request that a hook refused or failed.
func (s *session) hookFailed(req *request, e *event, f *hookFailure) bool {
	msg := s.p.hookMessage(f)
	if f.deny != nil {
		e.Status = f.status
		s.p.refuse(e, req.dst, verdict{rule: fmt.Sprintf("plugin %q", f.hook), reason: msg})
		return s.reply(req, f.status, http.Header{"X-Cordon-Block": {msg}},
			fmt.Sprintf("cordon blocked %s %s\nreason: %s\n", req.Method, req.dst, msg))
	}
	e.Event, e.Decision, e.Host, e.Port, e.Status, e.Error = "decision", "allow", req.dst.host, req.dst.port, f.status, msg
	s.p.audit.write(e)
	s.p.cfg.Logger.Warn("netproxy: plugin failure", "plugin", f.hook, "dest", req.dst.String(), "err", msg)
	return s.reply(req, f.status, http.Header{"X-Cordon-Error": {msg}}, "cordon: "+msg+"\n")
}

// hopHeaders are the hop-by-hop headers (RFC 9110, section 7.6.1) and the proxy's own:
// never forwarded either way. Proxy-Authorization in particular never leaves the proxy.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders deletes the hop-by-hop headers from h, including those that the
// Connection header names.
func removeHopHeaders(h http.Header) {
	for name := range headerTokens(h["Connection"]) {
		h.Del(name)
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// forward serves one plain-HTTP request: decide its destination, send it there on a kept
// or new connection, relay the response. It reports whether the client connection can
// carry another request.
//
// Everything between the decision and the bytes on the wire happens on req.Request, a
// standard *http.Request with the hop-by-hop headers already gone: a hook that changes
// requests (adds credentials) belongs just before s.exchange.
func (s *session) forward(req *request) bool {
	e := &event{Proto: "http", Client: s.client, Method: req.Method}
	if req.mismatch != "" {
		return s.refuseMismatch(req, e)
	}
	v := s.p.decide(req.dst)
	if !v.allow {
		s.p.refuse(e, req.dst, v)
		return s.block(req, req.dst, &v)
	}
	removeHopHeaders(req.Header)
	if req.Body != http.NoBody {
		req.upgrade = "" // a protocol switch with a body in flight is not worth the ambiguity
	}
	// Credentials and hooks, on the request as it will be sent (only the framing and the
	// upgrade headers are added when it is written).
	var tch touched
	orig := req.Body
	f := s.p.applyCredentials(s.p.ctx, req.Request, req.dst, false, nil, &tch)
	if req.Body != orig {
		// A hook that hashed the body replaced the reader; the client connection's state
		// is still the original reader's.
		req.Body = &hookedBody{ReadCloser: req.Body, orig: orig}
	}
	tch.fill(e)
	if f != nil {
		e.Rule = v.rule
		return s.hookFailed(req, e, f)
	}
	for attempt := 0; ; attempt++ {
		up := s.up
		reused := up != nil && up.dst == req.dst
		if reused {
			e.Event, e.Decision, e.Rule, e.Host, e.Port, e.Addr = "decision", "allow", v.rule, req.dst.host, req.dst.port, up.e.Addr
			s.p.audit.write(e)
		} else {
			s.dropUpstream()
			conn, refusal, err := s.p.openAllowed(s.p.ctx, e, req.dst, v)
			switch {
			case refusal != nil:
				return s.block(req, req.dst, refusal)
			case errors.Is(err, ErrClosed):
				return false
			case err != nil:
				return s.fail(req, err)
			}
			ic := &idleConn{Conn: conn, act: s.ic.act}
			ec := *e
			ec.Method = "" // the connection may carry other requests
			up = &upstream{dst: req.dst, conn: conn, ic: ic, br: bufio.NewReaderSize(ic, 4096),
				bw: bufio.NewWriterSize(ic, 4096), e: &ec, start: time.Now()}
			s.up = up
		}
		up.reqs++
		keep, retry := s.exchange(up, req, reused && attempt == 0 && idempotent(req.Method))
		if !retry {
			return keep
		}
		s.dropUpstream()
	}
}

// idempotent reports whether a request with this method may be sent again when a kept
// connection turns out to have been closed by the server (RFC 9110, section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// dropUpstream closes the kept upstream connection, if any, and audits its end.
func (s *session) dropUpstream() {
	up := s.up
	if up == nil {
		return
	}
	s.up = nil
	s.p.untrack(up.conn)
	up.e.Requests = up.reqs
	s.p.auditClose(up.e, up.start, up.ic.wrote.Load(), up.ic.read.Load(), nil)
}

// exchange sends req on up and relays the response. retry is true if up turned out to be
// stale (closed by the server while idle) before anything of the request could matter, and
// the request may be sent again on a new connection.
func (s *session) exchange(up *upstream, req *request, mayRetry bool) (keep, retry bool) {
	readBefore := up.ic.read.Load()
	writeRequestHead(up.bw, req)
	var wdone chan error
	if req.Body == http.NoBody {
		if err := up.bw.Flush(); err != nil {
			if mayRetry {
				return false, true
			}
			s.dropUpstream()
			return s.fail(req, fmt.Errorf("sending the request to %s: %w", req.dst, err)), false
		}
	} else {
		// The body goes up while the response comes down: the upstream may answer
		// "100 Continue" first, or answer early without reading the body.
		wdone = make(chan error, 1)
		s.p.wg.Add(1)
		go func() {
			defer s.p.wg.Done()
			err := writeBody(up.bw, req)
			if err != nil {
				_ = up.conn.Close() // unblocks the response reader
			}
			wdone <- err
		}()
	}
	waitBody := func() error {
		if wdone == nil {
			return nil
		}
		err := <-wdone
		wdone = nil
		return err
	}
	// stopBody makes the body writer give up: it is blocked either on the upstream (closed
	// by dropUpstream) or on the client, whose reads stop at the deadline.
	stopBody := func(grace time.Duration) { s.ic.stopReads(time.Now().Add(grace)) }
	defer func() {
		if wdone != nil {
			s.dropUpstream()
			stopBody(0)
			_ = waitBody()
		}
	}()

	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(up.br, req.Request)
		if err != nil {
			if mayRetry && wdone == nil && up.ic.read.Load() == readBefore && !isTimeout(err) && !errors.Is(err, errIdle) {
				return false, true
			}
			s.dropUpstream()
			if wdone != nil {
				stopBody(0)
				if berr := waitBody(); berr != nil {
					var ce *clientBodyError
					if errors.As(berr, &ce) && !isTimeout(ce.err) && !errors.Is(ce.err, errIdle) {
						return s.reply(nil, http.StatusBadRequest, nil, "cordon: "+ce.Error()+"\n"), false
					}
				}
			}
			if !errors.Is(err, errIdle) {
				err = fmt.Errorf("%s sent no valid response: %w", req.dst, err)
			}
			return s.fail(req, err), false
		}
		if resp.StatusCode == http.StatusSwitchingProtocols || resp.StatusCode >= 200 || resp.StatusCode < 100 {
			break
		}
		if req.ProtoMinor == 0 {
			continue // HTTP/1.0 has no interim responses
		}
		s.writeHead(resp, nil) // 100 Continue, 103 Early Hints: relayed as they come
		if err := s.bw.Flush(); err != nil {
			s.dropUpstream()
			return false, false
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return s.switchProtocols(up, req, resp), false
	}

	bodyDone := wdone == nil
	if !bodyDone {
		select {
		case err := <-wdone:
			wdone, bodyDone = nil, err == nil
		default:
		}
	}
	keep = !req.Close && bodyDone
	noBody := req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	chunked := false
	var framing []string
	switch {
	case noBody:
	case resp.ContentLength >= 0:
		framing = append(framing, "Content-Length: "+strconv.FormatInt(resp.ContentLength, 10))
	case req.ProtoMinor >= 1:
		chunked = true
		framing = append(framing, "Transfer-Encoding: chunked")
	default:
		keep = false // an HTTP/1.0 client: the end of the body is the end of the connection
	}
	if !keep {
		framing = append(framing, "Connection: close")
	}
	var trailers http.Header
	if chunked {
		trailers = resp.Trailer
		if names := trailerNames(trailers); names != "" {
			framing = append(framing, "Trailer: "+names)
		}
	}
	s.writeHead(resp, framing)
	err := s.copyBody(up, resp, chunked, noBody)
	if err == nil && chunked {
		writeTrailers(s.bw, trailers)
	}
	if ferr := s.bw.Flush(); err == nil {
		err = ferr
	}
	_ = resp.Body.Close()
	if err != nil || resp.Close || !keep {
		s.dropUpstream()
	}
	switch {
	case err != nil:
		_ = s.conn.Close() // the response is cut short: the client must see that
		return false, false
	case !keep && wdone != nil:
		// Answered before the upload ended: let the writer drain the client for a moment so
		// that the kernel does not reset the connection under the response.
		if cw, ok := s.conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		stopBody(500 * time.Millisecond)
		_ = waitBody()
		return false, false
	case !keep:
		lingerClose(s.conn)
		return false, false
	}
	if berr := waitBody(); berr != nil {
		s.dropUpstream()
		return false, false
	}
	return true, false
}

// writeRequestHead writes the request line and headers for the upstream: origin-form
// target, Host from the decided destination, the body's framing, no hop-by-hop headers.
func writeRequestHead(w *bufio.Writer, req *request) {
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.Host)
	w.WriteString("\r\n")
	_ = req.Header.Write(w)
	switch {
	case req.ContentLength > 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	case req.ContentLength < 0:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if req.upgrade != "" {
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.WriteString(oneLine(req.upgrade))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
}

// clientBodyError is a failure to read the request body from the client.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "reading the request body: " + e.err.Error() }

// writeBody streams the request body to w, chunked if it came chunked, flushing as it
// goes so that nothing waits in the buffer.
func writeBody(w *bufio.Writer, req *request) error {
	if err := w.Flush(); err != nil {
		return err
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	chunked := req.ContentLength < 0
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			if chunked {
				w.WriteString(strconv.FormatInt(int64(n), 16))
				w.WriteString("\r\n")
			}
			w.Write(buf[:n])
			if chunked {
				w.WriteString("\r\n")
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &clientBodyError{rerr}
		}
	}
	if chunked {
		w.WriteString("0\r\n\r\n")
	}
	return w.Flush()
}

// writeHead writes a response's status line and headers to the client, without hop-by-hop
// headers, and then the given framing header lines.
func (s *session) writeHead(resp *http.Response, framing []string) {
	w := s.bw
	removeHopHeaders(resp.Header)
	if len(framing) > 0 && !strings.HasPrefix(framing[0], "Connection") {
		resp.Header.Del("Content-Length")
	}
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	fmt.Fprintf(w, "HTTP/1.1 %03d %s\r\n", resp.StatusCode, oneLine(reason))
	_ = resp.Header.Write(w)
	for _, f := range framing {
		w.WriteString(f)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
}

// copyBody streams a response body to the client, flushing whenever nothing more is
// waiting upstream so that streamed responses (server-sent events) arrive as sent.
func (s *session) copyBody(up *upstream, resp *http.Response, chunked, noBody bool) error {
	if noBody {
		return nil
	}
	if up.br.Buffered() == 0 {
		if err := s.bw.Flush(); err != nil {
			return err
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	w := s.bw
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if chunked {
				w.WriteString(strconv.FormatInt(int64(n), 16))
				w.WriteString("\r\n")
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if chunked {
				w.WriteString("\r\n")
			}
			if up.br.Buffered() == 0 {
				if err := w.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			if chunked {
				w.WriteString("0\r\n")
			}
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func trailerNames(t http.Header) string {
	var names []string
	for k := range t {
		if !isHop(k) {
			names = append(names, k)
		}
	}
	return strings.Join(names, ", ")
}

// writeTrailers ends a chunked body: the trailer fields, then the empty line.
func writeTrailers(w *bufio.Writer, t http.Header) {
	for k, vs := range t {
		if isHop(k) {
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(oneLine(v))
			w.WriteString("\r\n")
		}
	}
	w.WriteString("\r\n")
}

func isHop(name string) bool {
	name = textproto.CanonicalMIMEHeaderKey(name)
	for _, h := range hopHeaders {
		if h == name {
			return true
		}
	}
	return name == "Content-Length" || name == "Host"
}

// switchProtocols relays a 101 response to a request that asked for an upgrade (a
// WebSocket over plain HTTP) and turns the connection into a tunnel.
func (s *session) switchProtocols(up *upstream, req *request, resp *http.Response) bool {
	proto := resp.Header.Get("Upgrade")
	if req.upgrade == "" || proto == "" {
		s.dropUpstream()
		return s.fail(req, fmt.Errorf("%s switched protocols without being asked", req.dst))
	}
	s.writeHead(resp, []string{"Connection: Upgrade", "Upgrade: " + oneLine(proto)})
	if err := s.bw.Flush(); err != nil {
		s.dropUpstream()
		return false
	}
	s.up = nil
	head, _ := s.br.Peek(s.br.Buffered())
	upHead, _ := up.br.Peek(up.br.Buffered())
	upB, downB, err := s.p.tunnel(s.conn, head, up.conn, upHead)
	s.p.untrack(up.conn)
	up.e.Requests = up.reqs
	s.p.auditClose(up.e, up.start, up.ic.wrote.Load()+upB, up.ic.read.Load()+downB, err)
	return false
}
