package netproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"
	"golang.org/x/net/websocket"

	"github.com/cordonsh/cordon/hostmatch"
)

const testToken = "test-token-0123456789"

// fakeResolver maps names to addresses, as a test wants them. Unknown names do not exist.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// baseResolver is what most tests use: the allowed names live on loopback.
func baseResolver() fakeResolver {
	return fakeResolver{
		"allowed.test":           addrs("127.0.0.1"),
		"www.allowed.test":       addrs("127.0.0.1"),
		"bad.allowed.test":       addrs("127.0.0.1"),
		"v6.allowed.test":        addrs("::1"),
		"denied.test":            addrs("127.0.0.1"),
		"evil.test":              addrs("127.0.0.1"),
		"allowed.test.evil.test": addrs("127.0.0.1"),
	}
}

// recordingDialer dials for real and remembers every address it was asked for.
type recordingDialer struct {
	mu    sync.Mutex
	addrs []string
	d     net.Dialer
}

func (r *recordingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	r.mu.Lock()
	r.addrs = append(r.addrs, address)
	r.mu.Unlock()
	return r.d.DialContext(ctx, network, address)
}

func (r *recordingDialer) dialed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.addrs...)
}

// syncBuffer is an audit sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) events(t testing.TB) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// env is a running proxy with its test dependencies.
type env struct {
	t      testing.TB
	p      *Proxy
	addr   string // the proxy's listener, "127.0.0.1:port"
	audit  *syncBuffer
	dialer *recordingDialer
	served chan error
}

func patterns(s ...string) []hostmatch.Pattern {
	out := make([]hostmatch.Pattern, len(s))
	for i, p := range s {
		out[i] = hostmatch.MustParse(p)
	}
	return out
}

// testConfig allows allowed.test and its subdomains, denies bad.allowed.test, and lets
// destinations resolve to loopback.
func testConfig() Config {
	return Config{
		Allow:        patterns("allowed.test", "*.allowed.test"),
		Deny:         patterns("bad.allowed.test"),
		AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Token:        testToken,
		Resolver:     baseResolver(),
		PolicySource: "/work/cordon.toml",
	}
}

func startProxy(t testing.TB, cfg Config) *env {
	t.Helper()
	e := &env{t: t, audit: &syncBuffer{}, dialer: &recordingDialer{}, served: make(chan error, 1)}
	if cfg.Audit == nil {
		cfg.Audit = e.audit
	}
	if cfg.Dialer == nil {
		cfg.Dialer = e.dialer
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.p, e.addr = p, l.Addr().String()
	go func() { e.served <- p.Serve(l) }()
	t.Cleanup(func() {
		_ = p.Close()
		select {
		case err := <-e.served:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("Serve returned %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return e
}

func (e *env) proxyURL() *url.URL {
	u, _ := url.Parse(e.p.URL(e.addr))
	return u
}

// httpClient goes through the proxy over HTTP (absolute URIs and CONNECT).
func (e *env) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyURL(e.proxyURL()),
		TLSClientConfig:       &tls.Config{RootCAs: testCerts().pool},
		ExpectContinueTimeout: 5 * time.Second,
	}, Timeout: 30 * time.Second}
}

// socksClient goes through the proxy over SOCKS5, sending names (ATYP 3).
func (e *env) socksClient() *http.Client {
	d, err := proxy.SOCKS5("tcp", e.addr, &proxy.Auth{User: "cordon", Password: testToken}, proxy.Direct)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:     d.(proxy.ContextDialer).DialContext,
		TLSClientConfig: &tls.Config{RootCAs: testCerts().pool},
	}, Timeout: 30 * time.Second}
}

func (e *env) dial() net.Conn {
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

func authHeader(token string) string {
	return "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("cordon:"+token)) + "\r\n"
}

// connect opens a CONNECT tunnel to authority and returns the connection after a 200.
func (e *env) connect(authority string) (net.Conn, *bufio.Reader) {
	e.t.Helper()
	c := e.dial()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", authority, authority, authHeader(testToken))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("CONNECT %s: %s: %s", authority, resp.Status, body)
	}
	return c, br
}

// raw sends raw request bytes on a new connection and reads one response.
func (e *env) raw(req string) *http.Response {
	e.t.Helper()
	c := e.dial()
	if _, err := io.WriteString(c, req); err != nil {
		e.t.Fatal(err)
	}
	method := strings.SplitN(req, " ", 2)[0]
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		e.t.Fatalf("reading the response to %q: %v", req, err)
	}
	if method == http.MethodConnect && resp.StatusCode == 200 {
		return resp // a tunnel, not a body
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func bodyString(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

// certs is a self-signed certificate for the test names.
type certs struct {
	cert    tls.Certificate
	pool    *x509.CertPool
	pemFile string // for curl
}

var (
	certsOnce sync.Once
	certsVal  *certs
)

func testCerts() *certs {
	certsOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "cordon test"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			DNSNames:              []string{"allowed.test", "*.allowed.test"},
			IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		c, _ := x509.ParseCertificate(der)
		pool := x509.NewCertPool()
		pool.AddCert(c)
		dir, err := os.MkdirTemp("", "netproxy-test-")
		if err != nil {
			panic(err)
		}
		pemFile := filepath.Join(dir, "ca.pem")
		pemData := "-----BEGIN CERTIFICATE-----\n" + wrap64(base64.StdEncoding.EncodeToString(der)) + "-----END CERTIFICATE-----\n"
		if err := os.WriteFile(pemFile, []byte(pemData), 0o600); err != nil {
			panic(err)
		}
		certsVal = &certs{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool: pool, pemFile: pemFile}
	})
	return certsVal
}

func wrap64(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	return b.String() + s + "\n"
}

// upstreams are the local servers the tests reach through the proxy.
type upstreams struct {
	http, https *httptest.Server
	http6       *httptest.Server // on [::1], nil without IPv6
	release     chan struct{}    // closed by releaseAll to let /stream and /slow finish
	once        sync.Once
}

func (u *upstreams) releaseAll() { u.once.Do(func() { close(u.release) }) }

// echoInfo is what "/" answers: what the server saw.
type echoInfo struct {
	Method  string
	Host    string
	URI     string
	Header  http.Header
	BodyLen int64
	BodySHA string
}

func startUpstreams(t testing.TB) *upstreams {
	u := &upstreams{release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Reject") != "" {
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("Connection", "X-Hop-Secret")
		w.Header().Set("X-Hop-Secret", "leaked")
		w.Header().Set("Keep-Alive", "timeout=5")
		_ = json.NewEncoder(w).Encode(echoInfo{Method: r.Method, Host: r.Host, URI: r.RequestURI, Header: r.Header,
			BodyLen: n, BodySHA: hex.EncodeToString(h.Sum(nil))})
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		_, _ = io.Copy(w, io.LimitReader(&patternReader{}, int64(n)))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	mux.HandleFunc("/upload-stream", func(w http.ResponseWriter, r *http.Request) {
		// Answers after the first 5 bytes, while the client still holds the rest.
		_ = http.NewResponseController(w).EnableFullDuplex()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return
		}
		w.WriteHeader(200)
		fmt.Fprintf(w, "got %s\n", buf)
		w.(http.Flusher).Flush()
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "then %s\n", rest)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-u.release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		fmt.Fprint(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "no upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(c, brw)
	})
	mux.Handle("/ws", websocket.Handler(func(ws *websocket.Conn) { _, _ = io.Copy(ws, ws) }))

	u.http = httptest.NewServer(mux)
	t.Cleanup(u.http.Close)
	u.https = httptest.NewUnstartedServer(mux)
	u.https.TLS = &tls.Config{Certificates: []tls.Certificate{testCerts().cert}}
	u.https.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes that tests fail on purpose
	u.https.StartTLS()
	t.Cleanup(u.https.Close)
	if l, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		u.http6 = httptest.NewUnstartedServer(mux)
		u.http6.Listener.Close()
		u.http6.Listener = l
		u.http6.Start()
		t.Cleanup(u.http6.Close)
	}
	t.Cleanup(u.releaseAll)
	return u
}

func port(s *httptest.Server) string {
	_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
	return p
}

// patternReader yields an endless, cheap byte stream that does not repeat at small scale.
type patternReader struct{ off int }

func (r *patternReader) Read(p []byte) (int, error) {
	for i := range p {
		o := r.off + i
		p[i] = byte(o*7 + o/251)
	}
	r.off += len(p)
	return len(p), nil
}

// leakCheck records goroutines and open fds now and, at cleanup, waits for both to come
// back to that level.
func leakCheck(t testing.TB) {
	t.Helper()
	g0, fd0 := goruntime.NumGoroutine(), countFDs(t)
	t.Cleanup(func() {
		var g, fd int
		for i := 0; i < 100; i++ {
			goruntime.GC() // closes cached splice pipes that are no longer referenced
			g, fd = goruntime.NumGoroutine(), countFDs(t)
			if g <= g0 && fd <= fd0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		buf = buf[:goruntime.Stack(buf, true)]
		t.Errorf("leak: goroutines %d -> %d, fds %d -> %d\n%s", g0, g, fd0, fd, buf)
	})
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
