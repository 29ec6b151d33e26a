package netproxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cordonsh/cordon/hostmatch"
)

func TestParseAuthority(t *testing.T) {
	for _, tc := range []struct {
		in   string
		def  uint16
		want string // "" for an error
	}{
		{"example.com:443", 0, "example.com:443"},
		{"Example.COM.:443", 0, "example.com:443"},
		{"example.com", 80, "example.com:80"},
		{"example.com", 0, ""},
		{"example.com:", 80, ""},
		{"example.com:0443", 0, "example.com:443"},
		{"example.com:65536", 0, ""},
		{"example.com:-1", 0, ""},
		{"example.com:+1", 0, ""},
		{"192.0.2.1:80", 0, "192.0.2.1:80"},
		{"[2001:db8::1]:443", 0, "[2001:db8::1]:443"},
		{"[2001:db8::1]", 80, "[2001:db8::1]:80"},
		{"[::ffff:192.0.2.1]:80", 0, "192.0.2.1:80"},
		{"2001:db8::1", 80, ""},
		{"[192.0.2.1]:80", 0, ""},
		{"[fe80::1%eth0]:80", 0, ""},
		{"[fe80::1%25eth0]:80", 0, ""},
		{"[2001:db8::1]x:80", 0, ""},
		{"[2001:db8::1:80", 0, ""},
		{"user@example.com:443", 0, ""},
		{"evil.com#@example.com:443", 0, ""},
		{"evil.com/example.com:443", 0, ""},
		{"evil.com?example.com:443", 0, ""},
		{`evil.com\example.com:443`, 0, ""},
		{"exa mple.com:443", 0, ""},
		{"example.com\x00:443", 0, ""},
		{"0x7f.1:80", 0, ""},
		{"127.1:80", 0, ""},
		{"2130706433:80", 0, ""},
		{"01.02.03.04:80", 0, ""},
		{"*.example.com:443", 0, ""},
		{"", 80, ""},
		{":80", 0, ""},
		{"xn--nxasmq6b.example:443", 0, "xn--nxasmq6b.example:443"},
		{"bücher.example:443", 0, "xn--bcher-kva.example:443"},
	} {
		got, err := parseAuthority(tc.in, tc.def)
		if tc.want == "" {
			if err == nil {
				t.Errorf("parseAuthority(%q) = %v, want an error", tc.in, got)
			} else if !errors.Is(err, errBadAuthority) {
				t.Errorf("parseAuthority(%q): %v does not wrap errBadAuthority", tc.in, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("parseAuthority(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestReadRequest(t *testing.T) {
	origin := &target{host: "api.example.com", port: 443}
	for _, tc := range []struct {
		name     string
		in       string
		origin   *target
		dst      string // "" for an error
		uri      string // what goes upstream
		mismatch bool
		errIs    error
	}{
		{"absolute", "GET http://Example.com/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n", nil, "example.com:80", "/a?b", false, nil},
		{"absolute no path", "GET http://example.com:8080 HTTP/1.1\r\n\r\n", nil, "example.com:8080", "/", false, nil},
		{"absolute query only", "GET http://example.com?x=1 HTTP/1.1\r\n\r\n", nil, "example.com:80", "/?x=1", false, nil},
		{"host header port", "GET http://example.com/ HTTP/1.1\r\nHost: example.com:80\r\n\r\n", nil, "example.com:80", "/", false, nil},
		{"host mismatch", "GET http://example.com/ HTTP/1.1\r\nHost: evil.com\r\n\r\n", nil, "example.com:80", "/", true, nil},
		{"host port mismatch", "GET http://example.com/ HTTP/1.1\r\nHost: example.com:81\r\n\r\n", nil, "example.com:80", "/", true, nil},
		{"two hosts", "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nHost: example.com\r\n\r\n", nil, "", "", false, errBadRequest},
		{"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: whatever\r\n\r\n", nil, "example.com:443", "", false, nil},
		{"connect body", "CONNECT example.com:443 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", nil, "", "", false, errBadFraming},
		{"origin form", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", nil, "", "", false, errNotProxyForm},
		{"https", "GET https://example.com/ HTTP/1.1\r\n\r\n", nil, "", "", false, errBadScheme},
		{"fragment", "GET http://example.com/#x HTTP/1.1\r\n\r\n", nil, "", "", false, errBadRequest},
		{"userinfo", "GET http://u:p@example.com/ HTTP/1.1\r\n\r\n", nil, "", "", false, errBadAuthority},
		{"http2", "GET http://example.com/ HTTP/2.0\r\n\r\n", nil, "", "", false, errBadRequest},
		{"lower method ok", "get http://example.com/ HTTP/1.1\r\n\r\n", nil, "example.com:80", "/", false, nil},
		{"bad method", "G(T http://example.com/ HTTP/1.1\r\n\r\n", nil, "", "", false, errBadRequest},
		{"space in header name", "GET http://example.com/ HTTP/1.1\r\nX Y: z\r\n\r\n", nil, "", "", false, errBadRequest},
		{"te and cl", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", nil, "", "", false, errBadFraming},
		{"te not chunked", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", nil, "", "", false, errBadFraming},
		{"te twice", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", nil, "", "", false, errBadFraming},
		{"te in 1.0", "POST http://example.com/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", nil, "", "", false, errBadFraming},
		{"cl list same", "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", nil, "example.com:80", "/", false, nil},
		{"cl list differs", "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabc", nil, "", "", false, errBadFraming},
		{"cl plus", "POST http://example.com/ HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", nil, "", "", false, errBadFraming},
		{"intercepted origin form", "GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", origin, "api.example.com:443", "/v1/x", false, nil},
		{"intercepted wrong host", "GET /v1/x HTTP/1.1\r\nHost: evil.com\r\n\r\n", origin, "api.example.com:443", "/v1/x", true, nil},
		{"intercepted no host", "GET /v1/x HTTP/1.1\r\n\r\n", origin, "", "", false, errBadRequest},
		{"intercepted connect", "CONNECT a.com:443 HTTP/1.1\r\n\r\n", origin, "", "", false, errBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := &limitReader{r: strings.NewReader(tc.in), n: -1}
			req, err := readRequest(bufio.NewReader(lim), lim, 4096, tc.origin)
			if tc.dst == "" {
				if err == nil || tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Errorf("err = %v, want %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.dst.String() != tc.dst || (req.mismatch != "") != tc.mismatch {
				t.Errorf("dst %v mismatch %q", req.dst, req.mismatch)
			}
			if tc.uri != "" && req.URL.RequestURI() != tc.uri {
				t.Errorf("upstream URI %q, want %q", req.URL.RequestURI(), tc.uri)
			}
		})
	}
}

func TestChunkedBody(t *testing.T) {
	in := "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: dropped\r\n\r\n" +
		"GET http://example.com/next HTTP/1.1\r\n\r\n"
	lim := &limitReader{r: strings.NewReader(in), n: -1}
	br := bufio.NewReader(lim)
	req, err := readRequest(br, lim, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(req.Body)
	if err != nil || string(b) != "hello world" || !complete(req.Body) {
		t.Fatalf("body %q, %v, complete %v", b, err, complete(req.Body))
	}
	next, err := readRequest(br, lim, 4096, nil)
	if err != nil || next.URL.Path != "/next" {
		t.Fatalf("next request: %v %v", next, err)
	}
	// A chunk size that lies about the data is an error, not a desync.
	lim = &limitReader{r: strings.NewReader("POST http://e.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), n: -1}
	req, err = readRequest(bufio.NewReader(lim), lim, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(req.Body); err == nil {
		t.Error("bad chunk size accepted")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		{"93.184.216.34", true},
		{"8.8.8.8", true},
		{"2606:2800:220:1::1", true},
		{"64:ff9b::5db8:d822", true}, // NAT64 of a public address
		{"::ffff:93.184.216.34", true},
		{"127.0.0.1", false}, {"10.1.2.3", false}, {"172.31.255.255", false}, {"192.168.0.1", false},
		{"169.254.169.254", false}, {"100.100.100.200", false}, {"0.0.0.0", false}, {"255.255.255.255", false},
		{"224.0.0.251", false}, {"198.18.0.1", false}, {"192.0.0.192", false},
		{"::", false}, {"::1", false}, {"fe80::1", false}, {"fc00::1", false}, {"fd00:ec2::254", false},
		{"ff02::1", false}, {"::ffff:10.0.0.1", false}, {"64:ff9b::a00:1", false}, {"64:ff9b:1::1", false},
		{"2002:c000:0204::1", false}, {"2001::1", false}, {"2001:db8::1", false}, {"::a00:1", false},
		{"100::1", false}, {"fec0::1", false}, {"4000::1", false}, {"3fff::1", false},
	} {
		if got := classify(netip.MustParseAddr(tc.addr)) == ""; got != tc.public {
			t.Errorf("classify(%s) = %q", tc.addr, classify(netip.MustParseAddr(tc.addr)))
		}
	}
}

func TestDecide(t *testing.T) {
	p := &Proxy{cfg: Config{
		Allow: []hostmatch.Pattern{hostmatch.MustParse("example.com"), hostmatch.MustParse("*.github.com:443"),
			hostmatch.MustParse("192.0.2.7:8080"), hostmatch.MustParse("[2001:db8::7]")},
		Deny: []hostmatch.Pattern{hostmatch.MustParse("uploads.github.com"), hostmatch.MustParse("*.internal.example.com")},
	}}
	for _, tc := range []struct {
		host  string
		port  uint16
		allow bool
		rule  string
	}{
		{"example.com", 443, true, `network.allow "example.com"`},
		{"example.com", 22, true, `network.allow "example.com"`},
		{"www.example.com", 443, false, "not in network.allow"},
		{"api.github.com", 443, true, `network.allow "*.github.com:443"`},
		{"api.github.com", 80, false, "not in network.allow"},
		{"github.com", 443, false, "not in network.allow"},
		{"uploads.github.com", 443, false, `network.deny "uploads.github.com"`},
		{"a.internal.example.com", 443, false, `network.deny "*.internal.example.com"`},
		{"192.0.2.7", 8080, true, `network.allow "192.0.2.7:8080"`},
		{"192.0.2.7", 80, false, "IP address not in network.allow"},
		{"192.0.2.8", 8080, false, "IP address not in network.allow"},
		{"2001:db8::7", 443, true, `network.allow "[2001:db8::7]"`},
	} {
		tg, err := canonicalTarget(tc.host, tc.port)
		if err != nil {
			t.Fatal(err)
		}
		v := p.decide(tg)
		if v.allow != tc.allow || v.rule != tc.rule {
			t.Errorf("decide(%s) = %+v, want allow=%v rule %q", tg, v, tc.allow, tc.rule)
		}
		if !v.allow && (v.reason == "" || v.fix == "") {
			t.Errorf("decide(%s): refusal without reason or fix: %+v", tg, v)
		}
	}
}

func TestAuditFormat(t *testing.T) {
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	c := e.httpClient()
	getEcho(t, c, "http://allowed.test:"+port(up.http)+"/", nil)
	c.CloseIdleConnections()
	e.raw("GET http://denied.test/ HTTP/1.1\r\n" + authHeader(testToken) + "\r\n")
	e.raw("GET http://allowed.test/ HTTP/1.1\r\n\r\n")
	// The close event of the first request's upstream comes when the client went away.
	var evs []map[string]any
	for i := 0; i < 100; i++ {
		evs = e.audit.events(t)
		if len(evs) >= 4 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	kinds := map[string]map[string]any{}
	for _, ev := range evs {
		k := ev["event"].(string)
		if d, ok := ev["decision"].(string); ok {
			k += "/" + d
		}
		kinds[k] = ev
		if ts, _ := ev["time"].(string); !strings.HasSuffix(ts, "Z") {
			t.Errorf("time %q", ts)
		} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("time: %v", err)
		}
	}
	allow, deny, closed, auth := kinds["decision/allow"], kinds["decision/deny"], kinds["close"], kinds["auth_failed"]
	if allow == nil || deny == nil || closed == nil || auth == nil {
		t.Fatalf("events %v", evs)
	}
	if allow["proto"] != "http" || allow["host"] != "allowed.test" || allow["rule"] != `network.allow "allowed.test"` || allow["method"] != "GET" {
		t.Errorf("allow %v", allow)
	}
	if deny["host"] != "denied.test" || deny["port"] != 80.0 || deny["rule"] != "not in network.allow" || deny["reason"] == nil {
		t.Errorf("deny %v", deny)
	}
	if closed["bytes_up"].(float64) == 0 || closed["bytes_down"].(float64) == 0 || closed["requests"] != 1.0 || closed["addr"] == nil {
		t.Errorf("close %v", closed)
	}
	e.audit.mu.Lock()
	if bytes.Contains(e.audit.b.Bytes(), []byte(testToken)) {
		t.Errorf("the token is in the audit log")
	}
	e.audit.mu.Unlock()
}
