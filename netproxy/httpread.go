package netproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/cordonsh/cordon/hostmatch"
)

// limitReader is the reader under a client's bufio.Reader. While n >= 0 it lets at most n
// more bytes through and then fails with errHeaderTooBig: that bounds a header block
// whatever its shape (long lines, many lines, endless continuation lines).
type limitReader struct {
	r io.Reader
	n int64 // < 0: unlimited
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeaderTooBig
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// bufSlack is how far a bufio.Reader may read ahead of a header block: its buffer size.
const bufSlack = 4096

// request is one parsed client request.
type request struct {
	*http.Request
	dst     target // the destination, as decided and dialed
	upgrade string // the Upgrade header if the client asked for a protocol switch
	// mismatch is set if the Host header names another destination than the request
	// target: the request must be refused (it is parsed completely so that the refusal
	// can keep the connection when the body is empty).
	mismatch string
}

// readRequest reads one request head from br (whose underlying reader is lim) and sets up
// its body. Without origin it accepts only proxy requests: CONNECT with an authority, or an
// absolute "http://" URI. With origin (a connection whose destination is already decided,
// such as an intercepted tunnel) it also accepts origin-form targets ("/path"), and every
// request must be for origin. It never reads more than maxHeader (plus bufio's read-ahead)
// before the end of the head.
func readRequest(br *bufio.Reader, lim *limitReader, maxHeader int, origin *target) (*request, error) {
	lim.n = int64(maxHeader) + bufSlack - int64(br.Buffered())
	if lim.n < 0 {
		lim.n = 0
	}
	defer func() { lim.n = -1 }()
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return nil, headErr(err)
	}
	if len(line) > maxHeader {
		return nil, errHeaderTooBig
	}
	method, rawTarget, major, minor, err := parseRequestLine(line)
	if err != nil {
		return nil, err
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, headErr(err)
	}
	if hdr == nil {
		hdr = textproto.MIMEHeader{}
	}
	for k, vs := range hdr {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("%w: header name %q", errBadRequest, clip(k))
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("%w: value of header %q", errBadRequest, clip(k))
			}
		}
	}
	r := &request{Request: &http.Request{
		Method:     method,
		Proto:      fmt.Sprintf("HTTP/%d.%d", major, minor),
		ProtoMajor: major,
		ProtoMinor: minor,
		Header:     http.Header(hdr),
		RequestURI: rawTarget,
		Body:       http.NoBody,
	}}
	if len(hdr["Host"]) > 1 {
		return nil, fmt.Errorf("%w: more than one Host header", errBadRequest)
	}
	hostHdr, hasHost := "", len(hdr["Host"]) == 1
	if hasHost {
		hostHdr = hdr["Host"][0]
	}
	delete(hdr, "Host")

	switch {
	case method == http.MethodConnect:
		if origin != nil {
			return nil, fmt.Errorf("%w: CONNECT inside a tunnel", errBadRequest)
		}
		r.dst, err = parseAuthority(rawTarget, 0)
		if err != nil {
			return nil, err
		}
		r.URL = &url.URL{Host: r.dst.String()}
		r.Host = r.dst.String()
	case origin != nil && strings.HasPrefix(rawTarget, "/"):
		r.dst = *origin
		if r.URL, err = url.ParseRequestURI(rawTarget); err != nil {
			return nil, fmt.Errorf("%w: request target: %v", errBadRequest, err)
		}
		r.URL.Scheme, r.URL.Host = "https", origin.hostHeader(443)
		r.Host = r.URL.Host
		if !hasHost {
			return nil, fmt.Errorf("%w: no Host header", errBadRequest)
		}
		if ht, err := parseAuthority(hostHdr, 443); err != nil || ht != *origin {
			r.mismatch = fmt.Sprintf("the tunnel is for %s but the Host header names %q", origin, hostHdr)
		}
	default:
		var path string
		r.dst, path, err = parseAbsolute(rawTarget)
		if err != nil {
			return nil, err
		}
		if origin != nil && r.dst != *origin {
			r.mismatch = fmt.Sprintf("the tunnel is for %s but the request URI names %s", origin, r.dst)
		}
		if r.URL, err = url.ParseRequestURI(path); err != nil {
			return nil, fmt.Errorf("%w: request target: %v", errBadRequest, err)
		}
		r.URL.Scheme, r.URL.Host = "http", r.dst.hostHeader(80)
		r.Host = r.URL.Host
		if hasHost {
			if ht, err := parseAuthority(hostHdr, 80); err != nil || ht != r.dst {
				r.mismatch = fmt.Sprintf("the request URI names %s but the Host header names %q", r.dst, hostHdr)
			}
		}
	}

	conn := headerTokens(hdr["Connection"])
	r.Close = major == 1 && minor == 0 || conn["close"]
	if up := hdr.Get("Upgrade"); up != "" && conn["upgrade"] && method != http.MethodConnect {
		r.upgrade = up
	}
	if err := setBody(r, br, lim, maxHeader); err != nil {
		return nil, err
	}
	return r, nil
}

// headErr maps the errors of reading a head: EOF before anything is io.EOF (the client
// went away between requests), the size limit stays errHeaderTooBig.
func headErr(err error) error {
	switch {
	case errors.Is(err, errHeaderTooBig), err == io.EOF:
		return err
	case errors.Is(err, io.EOF):
		return io.ErrUnexpectedEOF
	}
	var pe textproto.ProtocolError
	if errors.As(err, &pe) {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return err
}

// parseRequestLine splits "METHOD SP target SP HTTP/1.x" strictly: single spaces, a token
// method, a target without spaces or controls, and HTTP/1.0 or HTTP/1.1.
func parseRequestLine(line string) (method, target string, major, minor int, err error) {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || target == "" {
		return "", "", 0, 0, fmt.Errorf("%w: request line %q", errBadRequest, clip(line))
	}
	for i := 0; i < len(method); i++ {
		if !isTokenChar(method[i]) {
			return "", "", 0, 0, fmt.Errorf("%w: method %q", errBadRequest, clip(method))
		}
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return "", "", 0, 0, fmt.Errorf("%w: request target %q", errBadRequest, clip(target))
		}
	}
	switch proto {
	case "HTTP/1.1":
		return method, target, 1, 1, nil
	case "HTTP/1.0":
		return method, target, 1, 0, nil
	}
	return "", "", 0, 0, fmt.Errorf("%w: version %q (only HTTP/1.0 and HTTP/1.1)", errBadRequest, clip(proto))
}

func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
}

// parseAbsolute parses an absolute-form request target "http://authority[/path][?query]"
// and returns the destination and the origin-form "/path?query". Only the http scheme is
// accepted (https goes through CONNECT), and user info and fragments are refused.
func parseAbsolute(s string) (target, string, error) {
	const scheme = "http://"
	if len(s) < len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		if strings.HasPrefix(s, "/") || s == "*" {
			return target{}, "", errNotProxyForm
		}
		if i := strings.Index(s, "://"); i > 0 {
			return target{}, "", fmt.Errorf("%w %q: the proxy forwards http:// URLs; clients reach https:// URLs with CONNECT", errBadScheme, clip(s[:i]))
		}
		return target{}, "", errNotProxyForm
	}
	if strings.ContainsRune(s, '#') {
		return target{}, "", fmt.Errorf("%w: a request target cannot have a fragment (\"#\")", errBadRequest)
	}
	rest := s[len(scheme):]
	auth, path := rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		auth, path = rest[:i], rest[i:]
		if path[0] == '?' {
			path = "/" + path
		}
	}
	t, err := parseAuthority(auth, 80)
	if err != nil {
		return target{}, "", err
	}
	return t, path, nil
}

// parseAuthority parses "host:port", "[v6]:port" and, if def is not 0, the same without
// ":port" (then the port is def). The host must be a valid DNS name or an IP literal
// (IPv6 only in brackets, no zone); it is returned canonical. User info ("@"), paths,
// queries, fragments, percent-encoding and backslashes are refused rather than
// interpreted, so that no later parser can read another host out of the same bytes.
func parseAuthority(s string, def uint16) (target, error) {
	if s == "" {
		return target{}, fmt.Errorf("%w: empty", errBadAuthority)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || strings.IndexByte(`@/?#%\`, c) >= 0 {
			return target{}, fmt.Errorf("%w: %q: character %q not allowed", errBadAuthority, clip(s), c)
		}
	}
	var host, portStr string
	var hasPort, bracketed bool
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return target{}, fmt.Errorf("%w: %q: missing \"]\"", errBadAuthority, clip(s))
		}
		host, bracketed = s[1:end], true
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return target{}, fmt.Errorf("%w: %q: unexpected text after \"]\"", errBadAuthority, clip(s))
			}
			portStr, hasPort = rest[1:], true
		}
	} else {
		if strings.Count(s, ":") > 1 {
			return target{}, fmt.Errorf("%w: %q: an IPv6 address must be in brackets", errBadAuthority, clip(s))
		}
		host, portStr, hasPort = strings.Cut(s, ":")
		if strings.ContainsAny(host, "[]") {
			return target{}, fmt.Errorf("%w: %q", errBadAuthority, clip(s))
		}
	}
	t := target{port: def}
	if hasPort {
		p, err := hostmatch.ParsePort(portStr)
		if err != nil {
			return target{}, fmt.Errorf("%w: %q: %v", errBadAuthority, clip(s), err)
		}
		t.port = p
	} else if def == 0 {
		return target{}, fmt.Errorf("%w: %q: a port is required", errBadAuthority, clip(s))
	}
	if bracketed {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return target{}, fmt.Errorf("%w: %q: not an IPv6 address", errBadAuthority, clip(s))
		}
		t.addr = a.Unmap()
		t.host = t.addr.String()
		return t, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		t.addr = a
		t.host = a.String()
		return t, nil
	}
	c, err := hostmatch.Canonical(host)
	if err != nil {
		return target{}, fmt.Errorf("%w: %v", errBadAuthority, err)
	}
	if _, err := netip.ParseAddr(c); err == nil {
		return target{}, fmt.Errorf("%w: %q", errBadAuthority, clip(s))
	}
	t.host = c
	return t, nil
}

// headerTokens returns the lower-cased comma-separated tokens of header values.
func headerTokens(values []string) map[string]bool {
	if len(values) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
				m[t] = true
			}
		}
	}
	return m
}

// setBody decides the framing of a request body and installs a reader for it. Anything
// ambiguous is refused rather than guessed: Transfer-Encoding other than a single
// "chunked", Transfer-Encoding together with Content-Length, differing Content-Lengths.
// The body is re-framed on the way out, so what the upstream sees is what was read here.
func setBody(r *request, br *bufio.Reader, lim *limitReader, maxHeader int) error {
	te, cl := r.Header.Values("Transfer-Encoding"), r.Header.Values("Content-Length")
	r.Header.Del("Transfer-Encoding")
	r.Header.Del("Content-Length")
	switch {
	case len(te) > 0:
		if len(cl) > 0 {
			return fmt.Errorf("%w: both Transfer-Encoding and Content-Length", errBadFraming)
		}
		if r.ProtoMinor == 0 {
			return fmt.Errorf("%w: Transfer-Encoding in an HTTP/1.0 request", errBadFraming)
		}
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return fmt.Errorf("%w: Transfer-Encoding %q (only \"chunked\")", errBadFraming, clip(strings.Join(te, ", ")))
		}
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
		r.Body = &body{r: httputil.NewChunkedReader(br), br: br, lim: lim, maxHeader: maxHeader, chunked: true}
	case len(cl) > 0:
		n, err := parseContentLength(cl)
		if err != nil {
			return err
		}
		r.ContentLength = n
		if n > 0 {
			r.Body = &body{r: br, left: n}
		} else {
			r.Header["Content-Length"] = []string{"0"} // explicit empty body, kept for the upstream
		}
	}
	if r.Method == http.MethodConnect && r.Body != http.NoBody {
		return fmt.Errorf("%w: CONNECT with a body", errBadFraming)
	}
	return nil
}

func parseContentLength(values []string) (int64, error) {
	var n int64 = -1
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if f == "" || len(f) > 18 || strings.TrimLeft(f, "0123456789") != "" {
				return 0, fmt.Errorf("%w: Content-Length %q", errBadFraming, clip(v))
			}
			var m int64
			for i := 0; i < len(f); i++ {
				m = m*10 + int64(f[i]-'0')
			}
			if n >= 0 && m != n {
				return 0, fmt.Errorf("%w: differing Content-Length values", errBadFraming)
			}
			n = m
		}
	}
	return n, nil
}

// body reads a request body as its framing says and reports whether it was read to the
// end, so that the connection can carry another request afterwards. Trailers of a chunked
// body are read (within maxHeader) and dropped: they are never forwarded.
type body struct {
	r         io.Reader
	br        *bufio.Reader
	lim       *limitReader
	maxHeader int
	chunked   bool
	left      int64 // bytes left of a Content-Length body
	done      bool
	err       error
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	if !b.chunked {
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err := b.r.Read(p)
		b.left -= int64(n)
		switch {
		case b.left == 0:
			b.done = true
			return n, io.EOF
		case err == io.EOF:
			b.err = io.ErrUnexpectedEOF
			return n, b.err
		case err != nil:
			b.err = err
		}
		return n, err
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.lim.n = int64(b.maxHeader) + bufSlack - int64(b.br.Buffered())
		_, terr := textproto.NewReader(b.br).ReadMIMEHeader()
		b.lim.n = -1
		if terr != nil {
			b.err = fmt.Errorf("%w: chunked trailer: %v", errBadRequest, terr)
			return n, b.err
		}
		b.done = true
		return n, io.EOF
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
	}
	return n, err
}

func (b *body) Close() error { return nil }

// hookedBody is a request body that a hook replaced (to hash it); orig is the reader of
// the client connection underneath.
type hookedBody struct {
	io.ReadCloser
	orig io.ReadCloser
}

// complete reports whether a request's body has been read to its end (or it had none).
func complete(rc io.ReadCloser) bool {
	if h, ok := rc.(*hookedBody); ok {
		rc = h.orig
	}
	b, ok := rc.(*body)
	return !ok || b.done
}

// clip shortens attacker-controlled text for error messages.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
