package netproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/cordonsh/cordon/hostmatch"
)

// canary returns a unique random secret for one test: if it shows up anywhere it should
// not, it came from that test.
func canary(t testing.TB) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "cordon-canary-" + hex.EncodeToString(b[:])
}

// credConfig is testConfig with a credential rule for api.allowed.test carrying secret,
// and upstream certificates verified against the test root.
func credConfig(secret string) Config {
	cfg := testConfig()
	cfg.UpstreamRoots = testCerts().pool
	cfg.Credentials = []Credential{{
		Name:   `credential "api"`,
		Hosts:  patterns("api.allowed.test"),
		Header: "Authorization",
		Value:  "Bearer " + secret,
	}}
	r := baseResolver()
	r["api.allowed.test"] = addrs("127.0.0.1")
	r["other.allowed.test"] = addrs("127.0.0.1")
	cfg.Resolver = r
	return cfg
}

// caPool is a pool with the proxy's interception CA alone.
func caPool(t testing.TB, p *Proxy) *x509.CertPool {
	t.Helper()
	pem := p.CACertPEM()
	if pem == nil {
		t.Fatal("the proxy has no interception CA")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CACertPEM is not a PEM certificate")
	}
	return pool
}

// interceptClient goes through the proxy and trusts the proxy's CA and the test root.
func (e *env) interceptClient(h2 bool) *http.Client {
	pool := caPool(e.t, e.p)
	pool.AddCert(testCerts().cert.Leaf)
	tr := &http.Transport{
		Proxy:             http.ProxyURL(e.proxyURL()),
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: h2,
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func init() {
	// The test certificate's parsed form, for pools.
	c := testCerts()
	if c.cert.Leaf == nil {
		c.cert.Leaf, _ = x509.ParseCertificate(c.cert.Certificate[0])
	}
}

// tlsThrough opens a CONNECT tunnel to authority and starts TLS in it with the given server
// name, trusting roots; it returns the connection or the handshake's error.
func (e *env) tlsThrough(authority, serverName string, roots *x509.CertPool, alpn ...string) (*tls.Conn, error) {
	c, br := e.connect(authority)
	if br.Buffered() > 0 {
		e.t.Fatal("bytes after the CONNECT response")
	}
	cfg := &tls.Config{ServerName: serverName, RootCAs: roots, NextProtos: alpn}
	if serverName == "" {
		cfg.InsecureSkipVerify = true // no SNI; the test only needs the ClientHello sent
	}
	tc := tls.Client(c, cfg)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc, nil
}

func TestInterceptInjectsAndReplaces(t *testing.T) {
	leakCheck(t)
	secret := canary(t)
	up := startUpstreams(t)
	e := startProxy(t, credConfig(secret))
	authority := "api.allowed.test:" + port(up.https)

	for _, tc := range []struct {
		name    string
		headers string // as the command sends them
	}{
		{"none", ""},
		{"canonical", "Authorization: Bearer fake\r\n"},
		{"case variants", "authorization: Bearer fake1\r\nAUTHORIZATION: Bearer fake2\r\nAuthorization: Bearer fake3\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := e.tlsThrough(authority, "api.allowed.test", caPool(t, e.p))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if issuer := conn.ConnectionState().PeerCertificates[0].Issuer.CommonName; !strings.Contains(issuer, "cordon") {
				t.Errorf("the client saw a certificate issued by %q, want cordon's CA", issuer)
			}
			fmt.Fprintf(conn, "GET /x?y=1 HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", authority, tc.headers)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var info echoInfo
			if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
				t.Fatal(err)
			}
			if got := info.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+secret {
				t.Errorf("the upstream saw Authorization %q, want exactly the credential", got)
			}
			if info.URI != "/x?y=1" || info.Host != authority {
				t.Errorf("the upstream saw %s %s", info.Host, info.URI)
			}
		})
	}
	// The audit log names the rule, never the value.
	waitAudit(t, e, func(ev map[string]any) bool {
		return ev["event"] == "request" && ev["proto"] == "https" && fmt.Sprint(ev["credentials"]) == `[credential "api"]`
	})
	for _, ev := range e.audit.events(t) {
		if ev["event"] == "decision" && ev["proto"] == "connect" && ev["intercepted"] != true {
			t.Errorf("decision %v is not marked intercepted", ev)
		}
	}
	if strings.Contains(e.audit.text(), secret) {
		t.Error("the audit log holds the secret")
	}
}

func TestInterceptHTTP2AndStreaming(t *testing.T) {
	leakCheck(t)
	secret := canary(t)
	up := startUpstreams(t)
	e := startProxy(t, credConfig(secret))
	base := "https://api.allowed.test:" + port(up.https)
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			c := e.interceptClient(h2)
			defer c.CloseIdleConnections()
			for i := 0; i < 3; i++ {
				resp, err := c.Get(base + "/")
				if err != nil {
					t.Fatal(err)
				}
				var info echoInfo
				_ = json.NewDecoder(resp.Body).Decode(&info)
				resp.Body.Close()
				if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
					t.Errorf("HTTP/%d to the client, want HTTP/%d", resp.ProtoMajor, want)
				}
				if info.Header.Get("Authorization") != "Bearer "+secret {
					t.Error("no credential at the upstream")
				}
			}
			// A POST body arrives whole.
			resp, err := c.Post(base+"/", "text/plain", strings.NewReader(strings.Repeat("x", 100000)))
			if err != nil {
				t.Fatal(err)
			}
			var info echoInfo
			_ = json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
			if info.BodyLen != 100000 {
				t.Errorf("upstream got %d bytes of the body", info.BodyLen)
			}
		})
	}
	// A stream: the first event arrives while the upstream still holds the second.
	c := e.interceptClient(true)
	defer c.CloseIdleConnections()
	resp, err := c.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	up.releaseAll()
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: second") {
		t.Errorf("rest of the stream %q", rest)
	}
}

func TestCredentialScope(t *testing.T) {
	leakCheck(t)
	secret := canary(t)
	up := startUpstreams(t)

	t.Run("other hosts stay opaque", func(t *testing.T) {
		e := startProxy(t, credConfig(secret))
		// The client trusts only the test root: the handshake succeeds only if it reaches
		// the upstream itself.
		conn, err := e.tlsThrough("other.allowed.test:"+port(up.https), "other.allowed.test", testCerts().pool)
		if err != nil {
			t.Fatalf("TLS to a host without credentials: %v", err)
		}
		defer conn.Close()
		if got := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "cordon test" {
			t.Errorf("the client saw %q, want the upstream's own certificate", got)
		}
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: other.allowed.test\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		var info echoInfo
		_ = json.NewDecoder(resp.Body).Decode(&info)
		if info.Header.Get("Authorization") != "" {
			t.Error("a credential went to another host")
		}
		for _, ev := range e.audit.events(t) {
			if ev["intercepted"] == true {
				t.Errorf("a tunnel to another host was intercepted: %v", ev)
			}
		}
	})

	t.Run("plain HTTP withheld", func(t *testing.T) {
		e := startProxy(t, credConfig(secret))
		info := getEcho(t, e.httpClient(), "http://api.allowed.test:"+port(up.http)+"/", nil)
		if v := info.Header.Get("Authorization"); v != "" {
			t.Errorf("the credential went over plain HTTP: %q", v)
		}
		var withheld bool
		for _, ev := range e.audit.events(t) {
			if fmt.Sprint(ev["withheld"]) == `[credential "api"]` {
				withheld = true
			}
		}
		if !withheld {
			t.Error("the audit log does not say the credential was withheld")
		}
	})

	t.Run("plain HTTP allowed", func(t *testing.T) {
		cfg := credConfig(secret)
		cfg.Credentials[0].AllowPlainHTTP = true
		e := startProxy(t, cfg)
		info := getEcho(t, e.httpClient(), "http://api.allowed.test:"+port(up.http)+"/",
			http.Header{"authorization": {"Bearer fake"}})
		if got := info.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+secret {
			t.Errorf("plain HTTP with allow_plain_http: upstream saw %q", got)
		}
		info = getEcho(t, e.httpClient(), "http://other.allowed.test:"+port(up.http)+"/", nil)
		if info.Header.Get("Authorization") != "" {
			t.Error("a credential went to another host over plain HTTP")
		}
	})

	t.Run("port restricted", func(t *testing.T) {
		cfg := credConfig(secret)
		cfg.Credentials[0].Hosts = patterns("api.allowed.test:1")
		e := startProxy(t, cfg)
		conn, err := e.tlsThrough("api.allowed.test:"+port(up.https), "api.allowed.test", testCerts().pool)
		if err != nil {
			t.Fatalf("a rule for port 1 intercepted another port: %v", err)
		}
		conn.Close()
	})
}

func TestInterceptRefusals(t *testing.T) {
	leakCheck(t)
	secret := canary(t)
	up := startUpstreams(t)
	authority := "api.allowed.test:" + port(up.https)

	t.Run("SNI mismatch", func(t *testing.T) {
		e := startProxy(t, credConfig(secret))
		for _, sni := range []string{"other.allowed.test", "evil.test", ""} {
			conn, err := e.tlsThrough(authority, sni, caPool(t, e.p))
			if err == nil {
				conn.Close()
				t.Fatalf("TLS with server name %q in a tunnel for api.allowed.test succeeded", sni)
			}
		}
		// The refusal is recorded just after the client sees its handshake fail.
		waitAuditN(t, e, 3, func(ev map[string]any) bool {
			return ev["rule"] == "TLS server name mismatch" && ev["decision"] == "deny"
		})
		if s := e.p.Summary(); len(s) == 0 || s[0].Rule != "TLS server name mismatch" {
			t.Errorf("summary %+v", s)
		}
	})

	t.Run("Host header mismatch", func(t *testing.T) {
		e := startProxy(t, credConfig(secret))
		conn, err := e.tlsThrough(authority, "api.allowed.test", caPool(t, e.p))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: other.allowed.test:%s\r\n\r\n", port(up.https))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if body := bodyString(resp); resp.StatusCode != 403 || strings.Contains(body, secret) {
			t.Errorf("Host mismatch: %s %q", resp.Status, body)
		}
	})

	t.Run("client does not trust the CA", func(t *testing.T) {
		e := startProxy(t, credConfig(secret))
		if _, err := e.tlsThrough(authority, "api.allowed.test", testCerts().pool); err == nil {
			t.Fatal("a client that trusts only the upstream's root accepted cordon's certificate")
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			s := e.p.Summary()
			if len(s) == 1 && strings.Contains(s[0].Rule, "does not trust") && strings.Contains(s[0].Fix, "SSL_CERT_FILE") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("summary %+v", s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("upstream certificate not trusted", func(t *testing.T) {
		cfg := credConfig(secret)
		cfg.UpstreamRoots = x509.NewCertPool() // trusts nothing
		e := startProxy(t, cfg)
		c := e.interceptClient(false)
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + authority + "/")
		if err != nil {
			t.Fatal(err)
		}
		body := bodyString(resp)
		if resp.StatusCode != 502 || !strings.Contains(body, "not signed by a trusted authority") || strings.Contains(body, secret) {
			t.Errorf("untrusted upstream: %s %q", resp.Status, body)
		}
	})

	t.Run("private address", func(t *testing.T) {
		cfg := credConfig(secret)
		cfg.Resolver.(fakeResolver)["api.allowed.test"] = addrs("10.1.2.3")
		e := startProxy(t, cfg)
		c := e.interceptClient(false)
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://api.allowed.test/")
		if err != nil {
			t.Fatal(err)
		}
		body := bodyString(resp)
		if resp.StatusCode != 403 || !strings.Contains(body, "private") || resp.Header.Get("X-Cordon-Block") == "" {
			t.Errorf("private address: %s %q", resp.Status, body)
		}
		if d := e.dialer.dialed(); len(d) != 0 {
			t.Errorf("dialed %v", d)
		}
	})

	t.Run("denied host is not intercepted", func(t *testing.T) {
		cfg := credConfig(secret)
		cfg.Deny = patterns("api.allowed.test")
		e := startProxy(t, cfg)
		resp := e.raw("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n" + authHeader(testToken) + "\r\n")
		if resp.StatusCode != 403 {
			t.Errorf("CONNECT to a denied credential host: %s", resp.Status)
		}
	})

	t.Run("non-TLS client gets an opaque tunnel", func(t *testing.T) {
		e := startProxy(t, credConfig(secret))
		c, br := e.connect("api.allowed.test:" + port(up.http))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: api.allowed.test\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		var info echoInfo
		_ = json.NewDecoder(resp.Body).Decode(&info)
		if info.Header.Get("Authorization") != "" {
			t.Error("a credential went into a plain-text tunnel")
		}
	})
}

func TestNameConstraints(t *testing.T) {
	for _, tc := range []struct {
		hosts []string
		ok    []string // names a leaf may be minted for and verify
		bad   []string // names whose leaves must not verify
	}{
		{[]string{"api.allowed.test"}, []string{"api.allowed.test"}, []string{"allowed.test", "evil.test", "api.allowed.test.evil.test", "127.0.0.1"}},
		{[]string{"*.example.com:443"}, []string{"a.example.com", "b.c.example.com"}, []string{"example.com", "example.org", "10.0.0.1"}},
		{[]string{"192.0.2.7"}, []string{"192.0.2.7"}, []string{"192.0.2.8", "example.com"}},
	} {
		t.Run(strings.Join(tc.hosts, ","), func(t *testing.T) {
			ca, err := newAuthority(patterns(tc.hosts...), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca.cert)
			if !ca.cert.IsCA || !ca.cert.MaxPathLenZero || !ca.cert.PermittedDNSDomainsCritical {
				t.Error("the CA may sign intermediates or its constraints are not critical")
			}
			if life := ca.cert.NotAfter.Sub(ca.cert.NotBefore); life > caLifetime+caBackdate {
				t.Errorf("CA lifetime %s", life)
			}
			verify := func(name string) error {
				leaf, err := ca.mint(name)
				if err != nil {
					return err
				}
				_, err = leaf.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool})
				return err
			}
			for _, n := range tc.ok {
				if err := verify(n); err != nil {
					t.Errorf("leaf for %s: %v", n, err)
				}
			}
			for _, n := range tc.bad {
				err := verify(n)
				var inv x509.CertificateInvalidError
				if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
					t.Errorf("leaf for %s: %v, want a name-constraint violation", n, err)
				}
			}
		})
	}
}

func TestLeafCache(t *testing.T) {
	ca, err := newAuthority(patterns("*.allowed.test"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ca.leaf("a.allowed.test")
	b, _ := ca.leaf("a.allowed.test")
	c, _ := ca.leaf("b.allowed.test")
	if a != b || a == c {
		t.Error("leaves are not cached per host")
	}
}

// fakeHook is a RequestHook a test controls.
type fakeHook struct {
	name  string
	hosts []string
	apply func(ctx context.Context, req *http.Request) (HookResult, error)
	calls atomic.Int64
}

func (h *fakeHook) Name() string { return h.name }
func (h *fakeHook) Hosts() []hostmatch.Pattern {
	return patterns(h.hosts...)
}
func (h *fakeHook) Apply(ctx context.Context, req *http.Request) (HookResult, error) {
	h.calls.Add(1)
	return h.apply(ctx, req)
}

func TestHooks(t *testing.T) {
	leakCheck(t)
	secret := canary(t)
	up := startUpstreams(t)
	hook := &fakeHook{name: "signer", hosts: []string{"*.allowed.test"}}
	hook.apply = func(ctx context.Context, req *http.Request) (HookResult, error) {
		switch req.URL.Path {
		case "/deny":
			return HookResult{Deny: &HookDeny{Status: 451, Reason: "not today " + secret}}, nil
		case "/fail":
			return HookResult{}, fmt.Errorf("plugin %q: trap: unreachable (%s)", "signer", secret)
		case "/panic":
			panic("boom")
		case "/slow":
			<-ctx.Done()
			return HookResult{}, ctx.Err()
		}
		// A hook runs after the credential rules and sees the request as it will go.
		if req.Header.Get("Authorization") != "Bearer "+secret && req.URL.Host == "api.allowed.test:"+port(up.https) {
			return HookResult{}, errors.New("the hook ran before the credential")
		}
		req.Header.Set("X-Signature", req.Method+" "+req.URL.Scheme+"://"+req.URL.Host+req.URL.Path)
		return HookResult{}, nil
	}
	cfg := credConfig(secret)
	cfg.Hooks = []RequestHook{hook}
	cfg.Redactor = NewRedactor(map[string][]byte{"plugin-secret": []byte(secret)})
	e := startProxy(t, cfg)

	for _, tc := range []struct {
		name string
		base string
		c    *http.Client
	}{
		{"intercepted", "https://api.allowed.test:" + port(up.https), e.interceptClient(true)},
		{"hook host only", "https://other.allowed.test:" + port(up.https), e.interceptClient(false)},
		{"plain HTTP", "http://other.allowed.test:" + port(up.http), e.httpClient()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.c.CloseIdleConnections()
			u, _ := url.Parse(tc.base)
			info := getEcho(t, tc.c, tc.base+"/ok", nil)
			if want := "GET " + u.Scheme + "://" + u.Host + "/ok"; info.Header.Get("X-Signature") != want {
				t.Errorf("X-Signature %q, want %q", info.Header.Get("X-Signature"), want)
			}
			for _, f := range []struct {
				path   string
				status int
				text   string
			}{
				{"/deny", 451, `plugin "signer" refused the request: not today [secret`},
				{"/fail", 502, `plugin "signer": trap: unreachable ([secret`},
				{"/panic", 502, `plugin "signer" panicked: boom`},
			} {
				resp, err := tc.c.Get(tc.base + f.path)
				if err != nil {
					t.Fatal(err)
				}
				body := bodyString(resp)
				if resp.StatusCode != f.status || !strings.Contains(body, f.text) || strings.Contains(body, secret) {
					t.Errorf("%s: %s %q", f.path, resp.Status, body)
				}
				for _, v := range resp.Header {
					if strings.Contains(strings.Join(v, " "), secret) {
						t.Errorf("%s: a response header holds the secret", f.path)
					}
				}
			}
			// Still serving after the faults.
			getEcho(t, tc.c, tc.base+"/ok", nil)
		})
	}
	// One refusal per client kind, each naming the plugin.
	waitAuditN(t, e, 3, func(ev map[string]any) bool {
		return ev["rule"] == `plugin "signer"` && fmt.Sprint(ev["plugins"]) == "[signer]"
	})
	if strings.Contains(e.audit.text(), secret) {
		t.Error("the audit log holds the secret")
	}
}

func TestHookConcurrency(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	var inFlight, peak atomic.Int64
	hook := &fakeHook{name: "count", hosts: []string{"api.allowed.test"}}
	hook.apply = func(ctx context.Context, req *http.Request) (HookResult, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		req.Header.Set("X-Seen", req.URL.Query().Get("i"))
		return HookResult{}, nil
	}
	cfg := credConfig(canary(t))
	cfg.Hooks = []RequestHook{hook}
	e := startProxy(t, cfg)
	c := e.interceptClient(true)
	defer c.CloseIdleConnections()
	base := "https://api.allowed.test:" + port(up.https)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(fmt.Sprintf("%s/?i=%d", base, i))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var info echoInfo
			if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
				errs <- err
				return
			}
			if info.Header.Get("X-Seen") != fmt.Sprint(i) {
				errs <- fmt.Errorf("request %d carried %q", i, info.Header.Get("X-Seen"))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if hook.calls.Load() != 100 {
		t.Errorf("%d hook calls", hook.calls.Load())
	}
	t.Logf("peak concurrent hook calls: %d", peak.Load())
}

// TestInterceptRefusesBadTargets sends HTTP/2 requests whose :path holds a space or a line
// break: forwarded to an HTTP/1.1 upstream it would end the request line early and let the
// client write a request of its own choosing upstream. (Go's HTTP/2 server refuses them
// already; badTarget is a second line, tested on its own below.)
func TestInterceptRefusesBadTargets(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, credConfig(canary(t)))
	authority := "api.allowed.test:" + port(up.https)
	conn, err := e.tlsThrough(authority, "api.allowed.test", caPool(t, e.p), "h2")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatal("no HTTP/2")
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	_ = fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", authority},
		{":path", "/x?a HTTP/1.1\r\nX: y"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	hb.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", authority}, {":path", "/x?a b"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	dec := hpack.NewDecoder(4096, nil)
	statuses := map[uint32]string{}
	for len(statuses) < 2 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v (statuses so far %v)", err, statuses)
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			fields, _ := dec.DecodeFull(f.HeaderBlockFragment())
			for _, hf := range fields {
				if hf.Name == ":status" {
					statuses[f.StreamID] = hf.Value
				}
			}
		case *http2.RSTStreamFrame:
			statuses[f.StreamID] = "reset"
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		}
	}
	for id, st := range statuses {
		if st != "400" && st != "reset" {
			t.Errorf("stream %d: %s, want the request refused", id, st)
		}
	}
}

func TestBadTarget(t *testing.T) {
	for _, tc := range []struct {
		target string
		bad    bool
	}{
		{"/x?a=1", false}, {"/a%20b", false}, {"/x?a b", true},
	} {
		u, err := url.ParseRequestURI(tc.target)
		if err != nil {
			t.Fatalf("%q: %v", tc.target, err)
		}
		if got := badTarget(u); got != tc.bad {
			t.Errorf("badTarget(%q) = %v", tc.target, got)
		}
	}
	for _, u := range []*url.URL{{Path: "/a\r\nb"}, {Path: "/", RawQuery: "a\tb"}, {Path: "/", RawQuery: "a\x7f"}} {
		if !badTarget(u) {
			t.Errorf("%#v passed", u)
		}
	}
}
