package netproxy

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// tryAll asks for host:port through plain HTTP, CONNECT and SOCKS5 (as a name) and
// returns the HTTP responses' status and X-Cordon-Block, and the SOCKS5 reply.
type attempt struct {
	httpStatus, connectStatus int
	httpBlock, connectBlock   string
	socks                     byte
}

func tryAll(t *testing.T, e *env, host string, port uint16) attempt {
	t.Helper()
	var a attempt
	hp := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if strings.HasPrefix(host, "[") {
		hp = host + ":" + strconv.Itoa(int(port))
	}
	r := e.raw(fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\n%s\r\n", hp, hp, authHeader(testToken)))
	a.httpStatus, a.httpBlock = r.StatusCode, r.Header.Get("X-Cordon-Block")
	r = e.raw(fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", hp, hp, authHeader(testToken)))
	a.connectStatus, a.connectBlock = r.StatusCode, r.Header.Get("X-Cordon-Block")
	if len(host) < 256 {
		a.socks, _ = socksTry(t, e, 1, strings.Trim(host, "[]"), port, 3)
	}
	return a
}

// TestBypassNames tries to reach something else than what the allow list names.
func TestBypassNames(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	p64, _ := strconv.Atoi(port(up.http))
	p := uint16(p64)
	for _, tc := range []struct {
		name    string
		host    string
		status  int    // for plain HTTP and CONNECT
		block   string // in X-Cordon-Block
		socks   byte
		noSOCKS bool
	}{
		{"name not in the allow list", "denied.test", 403, "denied.test:" + port(up.http) + " is not in network.allow", socksNotAllowed, false},
		{"deny rule beats allow rule", "bad.allowed.test", 403, `matches the network.deny rule "bad.allowed.test"`, socksNotAllowed, false},
		{"allowed name as a prefix", "allowed.test.evil.test", 403, "is not in network.allow", socksNotAllowed, false},
		{"fragment trick", "evil.test#@allowed.test", 400, "", socksHostUnreachable, false},
		{"user info trick", "evil.test@allowed.test", 400, "", socksHostUnreachable, false},
		{"backslash trick", `evil.test\allowed.test`, 400, "", socksHostUnreachable, false},
		{"percent-encoded dot", "allowed%2etest", 400, "", socksHostUnreachable, false},
		{"IPv4 literal", "127.0.0.1", 403, "is an IP address, and no network.allow rule names it", socksNotAllowed, false},
		{"IPv6 literal", "[::1]", 403, "is an IP address", socksNotAllowed, false},
		{"IPv4-mapped IPv6 literal", "[::ffff:127.0.0.1]", 403, "127.0.0.1:" + port(up.http) + " is an IP address", 0, true},
		{"decimal IPv4", "2130706433", 400, "", socksHostUnreachable, false},
		{"hex IPv4", "0x7f000001", 400, "", socksHostUnreachable, false},
		{"short IPv4", "127.1", 400, "", socksHostUnreachable, false},
		{"octal IPv4", "0177.0.0.1", 400, "", socksHostUnreachable, false},
		{"homoglyph", "аllowed.test", 403, "xn--llowed-", socksNotAllowed, false},
		{"empty label", "allowed..test", 400, "", socksHostUnreachable, false},
		{"IPv6 zone", "[fe80::1%25lo]", 400, "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tryAll(t, e, tc.host, p)
			if a.httpStatus != tc.status || a.connectStatus != tc.status {
				t.Errorf("HTTP %d, CONNECT %d; want %d", a.httpStatus, a.connectStatus, tc.status)
			}
			if !strings.Contains(a.httpBlock, tc.block) || !strings.Contains(a.connectBlock, tc.block) {
				t.Errorf("X-Cordon-Block %q / %q; want %q", a.httpBlock, a.connectBlock, tc.block)
			}
			if !tc.noSOCKS && a.socks != tc.socks {
				t.Errorf("SOCKS5 reply %d, want %d", a.socks, tc.socks)
			}
		})
	}
	if d := e.dialer.dialed(); len(d) != 0 {
		t.Errorf("the proxy dialed %v", d)
	}

	// The canonical spellings of an allowed name are the same name.
	for _, host := range []string{"ALLOWED.TEST", "allowed.test."} {
		if a := tryAll(t, e, host, p); a.httpStatus != 200 || a.connectStatus != 200 || a.socks != socksOK {
			t.Errorf("%s: %+v, want it allowed", host, a)
		}
	}
}

func TestHostHeaderMismatch(t *testing.T) {
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	p := port(up.http)
	for _, host := range []string{"evil.test", "evil.test:" + p, "allowed.test:1", "allowed.test:" + p + "@evil.test", "127.0.0.1:" + p, ""} {
		r := e.raw(fmt.Sprintf("GET http://allowed.test:%s/ HTTP/1.1\r\nHost: %s\r\n%s\r\n", p, host, authHeader(testToken)))
		if r.StatusCode != 403 || !strings.Contains(r.Header.Get("X-Cordon-Block"), "the Host header names") {
			t.Errorf("Host %q: %s %q", host, r.Status, r.Header.Get("X-Cordon-Block"))
		}
	}
	r := e.raw(fmt.Sprintf("GET http://allowed.test:%s/ HTTP/1.1\r\nHost: allowed.test:%s\r\nHost: evil.test\r\n%s\r\n", p, p, authHeader(testToken)))
	if r.StatusCode != 400 {
		t.Errorf("two Host headers: %s", r.Status)
	}
	if d := e.dialer.dialed(); len(d) != 0 {
		t.Errorf("the proxy dialed %v", d)
	}
	// Same host, other spelling: fine.
	r = e.raw(fmt.Sprintf("GET http://allowed.test:%s/ HTTP/1.1\r\nHost: ALLOWED.test.:%s\r\n%s\r\n", p, p, authHeader(testToken)))
	if r.StatusCode != 200 {
		t.Errorf("equivalent Host: %s", r.Status)
	}
}

func TestNotAProxyRequest(t *testing.T) {
	e := startProxy(t, testConfig())
	for req, want := range map[string]int{
		"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n":                                                  400,
		"GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n":                              400,
		"GET ftp://allowed.test/ HTTP/1.1\r\n\r\n":                                                      400,
		"GET http://allowed.test/ HTTP/2.0\r\n\r\n":                                                     400,
		"GET  http://allowed.test/ HTTP/1.1\r\n\r\n":                                                    400,
		"CONNECT allowed.test HTTP/1.1\r\n\r\n":                                                         400,
		"CONNECT allowed.test:0 HTTP/1.1\r\n\r\n":                                                       400,
		"CONNECT allowed.test:65536 HTTP/1.1\r\n\r\n":                                                   400,
		"POST http://allowed.test/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n": 400,
		"POST http://allowed.test/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n":          400,
		"POST http://allowed.test/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n":                501,
		"POST http://allowed.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n":                              501,
	} {
		if r := e.raw(req); r.StatusCode != want {
			t.Errorf("%q: %s, want %d", req, r.Status, want)
		}
	}
}

func TestTokenRequired(t *testing.T) {
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	p := port(up.http)
	basic := func(cred string) string {
		return "Proxy-Authorization: Basic " + b64(cred) + "\r\n"
	}
	for name, auth := range map[string]string{
		"none":             "",
		"wrong token":      basic("cordon:wrong"),
		"wrong user":       basic("root:" + testToken),
		"token as user":    basic(testToken + ":"),
		"bearer":           "Proxy-Authorization: Bearer " + testToken + "\r\n",
		"not base64":       "Proxy-Authorization: Basic cordon:" + testToken + "\r\n",
		"as Authorization": "Authorization: Basic " + b64("cordon:"+testToken) + "\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			for _, req := range []string{
				fmt.Sprintf("GET http://allowed.test:%s/ HTTP/1.1\r\nHost: allowed.test:%s\r\n%s\r\n", p, p, auth),
				fmt.Sprintf("CONNECT allowed.test:%s HTTP/1.1\r\n%s\r\n", p, auth),
			} {
				r := e.raw(req)
				if r.StatusCode != 407 || r.Header.Get("Proxy-Authenticate") != `Basic realm="cordon"` {
					t.Errorf("%q: %s, Proxy-Authenticate %q", req, r.Status, r.Header.Get("Proxy-Authenticate"))
				}
			}
		})
	}
	if d := e.dialer.dialed(); len(d) != 0 {
		t.Errorf("the proxy dialed %v", d)
	}
	// A keep-alive connection needs the token on every request.
	c := e.dial()
	fmt.Fprintf(c, "GET http://allowed.test:%s/ HTTP/1.1\r\nHost: allowed.test:%s\r\n%s\r\n", p, p, authHeader(testToken))
	fmt.Fprintf(c, "GET http://allowed.test:%s/ HTTP/1.1\r\nHost: allowed.test:%s\r\n\r\n", p, p)
	buf := make([]byte, 64<<10)
	var all string
	for !strings.Contains(all, "407") {
		n, err := c.Read(buf)
		all += string(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.HasPrefix(all, "HTTP/1.1 200") || !strings.Contains(all, "HTTP/1.1 407") {
		t.Errorf("second request without the token: %q", all)
	}
}

// TestBypassAddresses: allowed names that resolve to addresses the proxy must not reach.
func TestBypassAddresses(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	res := baseResolver()
	cases := []struct{ name, addr, class string }{
		{"loop", "127.0.0.1", "loopback"},
		{"loop-other", "127.3.4.5", "loopback"},
		{"loop6", "::1", "loopback"},
		{"rfc1918-10", "10.0.0.1", "private (RFC 1918)"},
		{"rfc1918-172", "172.16.5.4", "private (RFC 1918)"},
		{"rfc1918-192", "192.168.1.1", "private (RFC 1918)"},
		{"metadata", "169.254.169.254", "cloud metadata"},
		{"metadata6", "fd00:ec2::254", "cloud metadata"},
		{"linklocal", "169.254.1.1", "link-local"},
		{"linklocal6", "fe80::1", "link-local"},
		{"cgnat", "100.64.0.1", "carrier-grade NAT"},
		{"mapped-metadata", "::ffff:169.254.169.254", "cloud metadata"},
		{"mapped-loop", "::ffff:127.0.0.1", "loopback"},
		{"nat64-metadata", "64:ff9b::a9fe:a9fe", "NAT64 form of 169.254.169.254"},
		{"nat64-local", "64:ff9b:1::a00:1", "local-use NAT64"},
		{"6to4", "2002:a9fe:a9fe::1", "6to4"},
		{"teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
		{"ula", "fd12:3456::1", "unique-local"},
		{"compat", "::7f00:1", "IPv4-compatible"},
		{"unspecified", "0.0.0.0", "unspecified"},
		{"unspecified6", "::", "unspecified"},
		{"multicast", "224.0.0.1", "multicast"},
		{"multicast6", "ff02::1", "multicast"},
		{"broadcast", "255.255.255.255", "reserved"},
		{"documentation", "192.0.2.1", "documentation"},
		{"own", "8.8.4.4", "this host's own address"},
	}
	for _, c := range cases {
		res[c.name+".allowed.test"] = addrs(c.addr)
	}
	// Every address of this machine's interfaces, whatever its class.
	ifaddrs, _ := net.InterfaceAddrs()
	var own []string
	for i, ia := range ifaddrs {
		if n, ok := ia.(*net.IPNet); ok {
			a, _ := netip.AddrFromSlice(n.IP)
			if a.Is6() && a.IsLinkLocalUnicast() {
				continue // needs a zone to be dialed at all
			}
			name := fmt.Sprintf("iface%d.allowed.test", i)
			res[name] = []netip.Addr{a.Unmap()}
			own = append(own, name)
		}
	}
	cfg := testConfig()
	cfg.AllowPrivate = nil
	cfg.Resolver = res
	e := startProxy(t, cfg)
	real := e.p.local
	e.p.local = func() []netip.Addr { return append(real(), netip.MustParseAddr("8.8.4.4")) }
	p64, _ := strconv.Atoi(port(up.http))
	p := uint16(p64)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := tryAll(t, e, c.name+".allowed.test", p)
			want := "refused as "
			if a.httpStatus != 403 || a.connectStatus != 403 || a.socks != socksNotAllowed {
				t.Errorf("%+v; want 403, 403, SOCKS5 reply 2", a)
			}
			for _, b := range []string{a.httpBlock, a.connectBlock} {
				if !strings.Contains(b, want) || !strings.Contains(b, c.class) {
					t.Errorf("X-Cordon-Block %q; want %q", b, c.class)
				}
			}
		})
	}
	for _, name := range own {
		if a := tryAll(t, e, name, p); a.httpStatus != 403 || a.connectStatus != 403 || a.socks != socksNotAllowed {
			t.Errorf("%s (%v): %+v; want refused", name, res[name], a)
		}
	}
	if d := e.dialer.dialed(); len(d) != 0 {
		t.Errorf("the proxy dialed %v", d)
	}

	// The fix names the exact range to add.
	r := e.raw(fmt.Sprintf("GET http://metadata.allowed.test:%d/ HTTP/1.1\r\n%s\r\n", p, authHeader(testToken)))
	if body := bodyString(r); !strings.Contains(body, `add "169.254.169.254/32" to network.allow_private in /work/cordon.toml`) {
		t.Errorf("403 body: %q", body)
	}
}

// TestAllowPrivateRequired shows that the tests' own loopback servers are reachable only
// because AllowPrivate says so, and that the proxy dials exactly the checked address.
func TestAllowPrivateRequired(t *testing.T) {
	up := startUpstreams(t)
	p := port(up.http)
	req := fmt.Sprintf("GET http://allowed.test:%s/ HTTP/1.1\r\nHost: allowed.test:%s\r\n%s\r\n", p, p, authHeader(testToken))

	cfg := testConfig()
	cfg.AllowPrivate = nil
	e := startProxy(t, cfg)
	if r := e.raw(req); r.StatusCode != 403 || !strings.Contains(r.Header.Get("X-Cordon-Block"), "resolves to 127.0.0.1, refused as loopback") {
		t.Errorf("without allow_private: %s %q", r.Status, r.Header.Get("X-Cordon-Block"))
	}

	cfg = testConfig()
	res := baseResolver()
	res["allowed.test"] = addrs("10.0.0.1", "169.254.169.254", "127.0.0.1") // only the last is allowed
	cfg.Resolver = res
	e = startProxy(t, cfg)
	if r := e.raw(req); r.StatusCode != 200 {
		t.Fatalf("with allow_private: %s", r.Status)
	}
	if d := e.dialer.dialed(); len(d) != 1 || d[0] != "127.0.0.1:"+p {
		t.Errorf("dialed %v, want exactly the allowed address", d)
	}
	if r := e.raw(strings.Replace(req, "GET", "HEAD", 1)); r.StatusCode != 200 {
		t.Errorf("HEAD: %s", r.Status)
	}
}

func TestSummaryAndBlockBody(t *testing.T) {
	e := startProxy(t, testConfig())
	for i := 0; i < 3; i++ {
		e.raw("GET http://denied.test/ HTTP/1.1\r\n" + authHeader(testToken) + "\r\n")
	}
	r := e.raw("CONNECT bad.allowed.test:443 HTTP/1.1\r\n" + authHeader(testToken) + "\r\n")
	body := bodyString(r)
	if !strings.Contains(body, "cordon blocked CONNECT bad.allowed.test:443") || !strings.Contains(body, `remove "bad.allowed.test" from network.deny`) {
		t.Errorf("403 body %q", body)
	}
	r = e.raw("GET http://denied.test/x HTTP/1.1\r\n" + authHeader(testToken) + "\r\n")
	body = bodyString(r)
	for _, want := range []string{
		"cordon blocked GET denied.test:80",
		"reason: denied.test:80 is not in network.allow",
		`to allow it: add "denied.test:80" to network.allow in /work/cordon.toml, or run with --allow-domain denied.test:80`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("403 body %q lacks %q", body, want)
		}
	}
	got := e.p.Summary()
	if len(got) != 2 || got[0].Host != "denied.test:80" || got[0].Count != 4 || got[0].Rule != "not in network.allow" ||
		got[1].Host != "bad.allowed.test:443" || got[1].Count != 1 {
		t.Errorf("Summary() = %+v", got)
	}
}

func TestFixNamesTheSource(t *testing.T) {
	for src, want := range map[string]string{
		"flags":            "run with --allow-domain x.test:443",
		"":                 `add "x.test:443" to network.allow in a policy file (cordon.toml), or run with --allow-domain x.test:443`,
		"/etc/cordon.toml": `add "x.test:443" to network.allow in /etc/cordon.toml, or run with --allow-domain x.test:443`,
	} {
		p := &Proxy{cfg: Config{PolicySource: src}}
		if got := p.decide(target{host: "x.test", port: 443}).fix; got != want {
			t.Errorf("source %q: fix %q, want %q", src, got, want)
		}
	}
}
