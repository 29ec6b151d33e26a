package netproxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/cordonsh/cordon/hostmatch"
)

// FuzzReadRequest feeds arbitrary bytes to the HTTP request reader. It must never panic,
// never read more of a head than the limit allows, and whatever it accepts must name a
// canonical destination that the Host header agrees with (or be flagged as a mismatch).
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET http://example.com:8080/a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nConnection: keep-alive\r\n\r\n",
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic Y29yZG9uOng=\r\n\r\n",
		"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n",
		"POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"POST http://example.com/ HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
		"POST http://example.com/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
		"GET http://evil.com#@example.com/ HTTP/1.1\r\n\r\n",
		"GET http://example.com/ HTTP/1.1\r\nHost: evil.com\r\n\r\n",
		"GET http://example.com/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET http://example.com/ HTTP/1.0\r\n X-Folded: a\r\n\tb\r\n\r\n",
		"GET http://[::ffff:127.0.0.1]/ HTTP/1.1\r\n\r\n",
		"GET http://example.com/ HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET /origin HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
		"GET http://example.com/ HTTP/1.1\n\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	origin := &target{host: "api.example.com", port: 443}
	const maxHeader = 1024
	f.Fuzz(func(t *testing.T, data []byte, intercepted bool) {
		var o *target
		if intercepted {
			o = origin
		}
		src := &countingReader{r: bytes.NewReader(data)}
		lim := &limitReader{r: src, n: -1}
		br := bufio.NewReaderSize(lim, bufSlack)
		req, err := readRequest(br, lim, maxHeader, o)
		if src.n > maxHeader+bufSlack {
			t.Fatalf("read %d bytes of a head limited to %d", src.n, maxHeader)
		}
		if err != nil {
			return
		}
		checkTarget(t, req.dst)
		if req.Host != req.dst.hostHeader(80) && req.Host != req.dst.hostHeader(443) && req.Method != "CONNECT" {
			t.Fatalf("Host %q for destination %v", req.Host, req.dst)
		}
		if o != nil && req.dst != *o && req.mismatch == "" {
			t.Fatalf("intercepted request for %v accepted for %v", req.dst, *o)
		}
		if strings.ContainsAny(req.URL.RequestURI(), " \r\n") {
			t.Fatalf("upstream URI %q", req.URL.RequestURI())
		}
		for _, h := range []string{"Host", "Content-Length", "Transfer-Encoding"} {
			if h == "Content-Length" && req.ContentLength == 0 {
				continue
			}
			if len(req.Header[h]) > 0 {
				t.Fatalf("header %s left in place: the proxy writes it itself", h)
			}
		}
		_, _ = io.Copy(io.Discard, req.Body)
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// checkTarget asserts what every accepted destination satisfies: canonical host, a port,
// and the address form for IP literals.
func checkTarget(t *testing.T, d target) {
	t.Helper()
	if d.port == 0 {
		t.Fatalf("destination %v without a port", d)
	}
	if d.addr.IsValid() {
		if d.addr.Is4In6() || d.addr.Zone() != "" || d.host != d.addr.String() {
			t.Fatalf("address destination %#v", d)
		}
		return
	}
	c, err := hostmatch.Canonical(d.host)
	if err != nil || c != d.host {
		t.Fatalf("host %q is not canonical (%q, %v)", d.host, c, err)
	}
	if _, err := netip.ParseAddr(d.host); err == nil {
		t.Fatalf("name %q is an address", d.host)
	}
}

// FuzzSOCKS5Handshake runs the server side of the SOCKS5 handshake on arbitrary bytes. It
// must never panic, never accept without the right credentials, and return only canonical
// destinations.
func FuzzSOCKS5Handshake(f *testing.F) {
	auth := []byte{5, 1, 2, 1, 6, 'c', 'o', 'r', 'd', 'o', 'n', 3, 't', 'o', 'k'}
	for _, req := range [][]byte{
		{5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 1, 187},
		{5, 1, 0, 1, 192, 0, 2, 1, 0, 80},
		{5, 1, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80},
		{5, 3, 0, 1, 0, 0, 0, 0, 0, 0},
		{5, 2, 0, 1, 0, 0, 0, 0, 0, 0},
		{5, 1, 0, 9},
		{5, 1, 0, 3, 0, 0, 80},
	} {
		f.Add(append(append([]byte{}, auth...), req...), false)
		f.Add(append([]byte{5, 1, 0}, req...), true)
	}
	f.Add([]byte{5, 0}, false)
	f.Add([]byte{5, 2, 0, 2, 1, 0, 0}, false)
	f.Add([]byte{4, 1, 0, 80, 127, 0, 0, 1, 0}, false)
	f.Fuzz(func(t *testing.T, data []byte, noAuth bool) {
		checked := false
		check := func(u, p string) bool {
			checked = true
			return u == "cordon" && p == "tok"
		}
		var out bytes.Buffer
		dst, err := socksHandshake(bufio.NewReader(bytes.NewReader(data)), &out, noAuth, check)
		if err != nil {
			var se *socksError
			if errors.As(err, &se) && se.reply > socksAddrUnsupported {
				t.Fatalf("reply code %d", se.reply)
			}
			return
		}
		if !noAuth && !checked {
			t.Fatal("accepted without credentials")
		}
		if !noAuth && !bytes.Contains(data, []byte("\x06cordon\x03tok")) {
			t.Fatal("accepted wrong credentials")
		}
		checkTarget(t, dst)
	})
}

// FuzzParseAuthority parses CONNECT authorities (and Host headers). Whatever it accepts is
// canonical and parses back to itself.
func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{
		"example.com:443", "EXAMPLE.com.:80", "[2001:db8::1]:443", "[::ffff:1.2.3.4]:80", "1.2.3.4:80",
		"evil.com#@example.com:443", "u@h:1", "h:0443", "h:", ":80", "[fe80::1%eth0]:1", "bücher.example:443",
		"xn--bcher-kva.example:443", "0x7f.1:80", "a..b:1", "[1.2.3.4]:80", "a:b:c", "*.x.com:1",
	} {
		f.Add(s, uint16(0))
		f.Add(s, uint16(80))
	}
	f.Fuzz(func(t *testing.T, s string, def uint16) {
		d, err := parseAuthority(s, def)
		if err != nil {
			if !errors.Is(err, errBadAuthority) {
				t.Fatalf("error %v does not wrap errBadAuthority", err)
			}
			return
		}
		checkTarget(t, d)
		if strings.ContainsAny(s, "@#/?\\% \t\r\n") {
			t.Fatalf("accepted %q", s)
		}
		again, err := parseAuthority(d.String(), 0)
		if err != nil || again != d {
			t.Fatalf("%q -> %v -> %v, %v", s, d, again, err)
		}
	})
}

// FuzzRouteTarget: whatever request target a client sends to an upstream route, the request
// goes to the route's scheme and host, under its base path, and only with the path token.
func FuzzRouteTarget(f *testing.F) {
	for _, s := range []string{"/v1/x", "/tok/v1/x?q=1", "//evil.test/x", "/tok", "*", "http://evil.test/x", "/a%2Fb", "/tok/../../x", "/%74ok/x", ""} {
		f.Add(s)
	}
	rt, err := newRoute(Route{Name: "r", URL: "https://api.test:8443/base", PathToken: "tok"})
	if err != nil {
		f.Fatal(err)
	}
	open, _ := newRoute(Route{Name: "o", URL: "https://api.test/"})
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		for _, r := range []*route{rt, open} {
			out, err := r.target(u)
			if errors.Is(err, errRouteTarget) {
				continue
			}
			if err != nil {
				if r.PathToken == "" {
					t.Fatalf("%q refused without a token: %v", target, err)
				}
				continue
			}
			if r.PathToken != "" && !strings.HasPrefix(u.Path, "/"+r.PathToken) {
				t.Fatalf("%q passed without the token", target)
			}
			// The transport dials out.Host and writes out.RequestURI() as the request target.
			if out.Scheme != "https" || out.Host != r.base.Host || out.User != nil || out.Opaque != "" {
				t.Fatalf("%q: went to %#v", target, out)
			}
			if ru := out.RequestURI(); !strings.HasPrefix(ru, r.base.EscapedPath()+"/") || strings.ContainsAny(ru, " \r\n\x00") {
				t.Fatalf("%q: request target %q", target, ru)
			}
		}
	})
}
