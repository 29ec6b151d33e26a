package runtime

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
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
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cordonsh/cordon/hostmatch"
	"github.com/cordonsh/cordon/netproxy"
)

// buildGuest builds a Go plugin from dir (relative to this package) into out.
func buildGuest(t testing.TB, dir, out string) {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		// scripts/escape-suite.sh runs the compiled tests elsewhere, as other users; this
		// test does not depend on the sandbox and runs in the package's own `go test`.
		t.Skipf("the plugin's sources are not at %s (the test binary runs outside its package directory)", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", dir, err, b)
	}
}

// tlsUpstream is an HTTPS server for "*.test" names that answers with the headers it got.
type tlsUpstream struct {
	srv  *httptest.Server
	pool *x509.CertPool
}

func startTLSUpstream(t testing.TB) *tlsUpstream {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "upstream test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		DNSNames: []string{"api.test", "other.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = json.NewEncoder(w).Encode(map[string]any{"header": r.Header, "path": r.URL.Path, "host": r.Host})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes that tests fail on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &tlsUpstream{srv: srv, pool: pool}
}

func (u *tlsUpstream) port() string {
	_, p, _ := net.SplitHostPort(u.srv.Listener.Addr().String())
	return p
}

// loopbackResolver resolves every name to 127.0.0.1.
type loopbackResolver struct{}

func (loopbackResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// auditBuf is an audit sink safe for concurrent use.
type auditBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (a *auditBuf) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b.Write(p)
}

func (a *auditBuf) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b.String()
}

// credProxy starts a proxy for the policy's credentials with the test upstream's root, and
// returns a client that goes through it trusting the proxy's CA.
func credProxy(t *testing.T, c *Credentials, up *tlsUpstream, audit io.Writer) *http.Client {
	t.Helper()
	cfg := netproxy.Config{
		Allow:         nil,
		AllowPrivate:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		NoAuth:        true,
		Resolver:      loopbackResolver{},
		UpstreamRoots: up.pool,
		Audit:         audit,
	}
	for _, h := range []string{"api.test", "other.test"} {
		cfg.Allow = append(cfg.Allow, mustPattern(t, h))
	}
	c.ProxyConfig(&cfg, false)
	p, err := netproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(l) }()
	t.Cleanup(func() { _ = p.Close() })
	pool := x509.NewCertPool()
	if pem := p.CACertPEM(); pem != nil {
		pool.AppendCertsFromPEM(pem)
	}
	proxyURL, _ := url.Parse(p.URL(l.Addr().String()))
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
		MaxConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestPluginThroughProxy(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "faulty.wasm")
	buildGuest(t, "../plugins/testdata/guests/faulty", wasm)
	secret := canary(t)
	p := parsePolicy(t, dir, `
[secrets]
canary = "env:CANARY_TOKEN"
[[plugin]]
name = "faulty"
path = "faulty.wasm"
hosts = ["api.test"]
secrets = ["canary"]
timeout = "200ms"
memory_limit = "16MiB"
`)
	c, err := ResolveCredentials(context.Background(), p, CredentialOptions{
		Env: []string{"CANARY_TOKEN=" + secret}, Diag: &syncBuf{}, PluginCacheDir: filepath.Join(dir, "cache"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	up := startTLSUpstream(t)
	audit := &auditBuf{}
	client := credProxy(t, c, up, audit)
	base := "https://api.test:" + up.port() + "/"

	do := func(mode string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", base, nil)
		req.Header.Set("X-Test-Mode", mode)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("mode %s: %v", mode, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	for _, tc := range []struct {
		mode   string
		status int
		text   string
	}{
		{"secret", 200, `"Authorization":["Bearer ` + secret + `"]`},
		{"panic", 502, `plugin "faulty"`},
		{"loop", 502, `plugin "faulty"`},
		{"membomb", 502, `plugin "faulty"`},
		{"exit", 502, `plugin "faulty"`},
		{"fail", 502, "test plugin says no"},
		{"ungranted", 502, `plugin "faulty"`},
		{"deny", 451, "denied by test plugin"},
		{"ok", 200, `"X-Ok":["1"]`},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			resp, body := do(tc.mode)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.text) {
				t.Errorf("%s %q, want %d with %q", resp.Status, body, tc.status, tc.text)
			}
			if tc.status != 200 && strings.Contains(body, secret) {
				t.Error("an error body holds the secret")
			}
			// The proxy goes on serving.
			if resp, body := do("ok"); resp.StatusCode != 200 {
				t.Errorf("after %s: %s %q", tc.mode, resp.Status, body)
			}
		})
	}

	t.Run("100 concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan string, 100)
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s?i=%d", base, i), nil)
				req.Header.Set("X-Test-Mode", "secret")
				resp, err := client.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				defer resp.Body.Close()
				var got struct{ Header http.Header }
				if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || got.Header.Get("Authorization") != "Bearer "+secret {
					errs <- fmt.Sprintf("request %d: %s %v", i, resp.Status, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})

	if strings.Contains(audit.String(), secret) {
		t.Error("the audit log holds the secret")
	}
	if !strings.Contains(audit.String(), `"plugins":["faulty"]`) {
		t.Error("the audit log does not name the plugin")
	}
}

func TestPluginLoadFailures(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"empty.wasm", `plugin "p"`},
		{"missing.wasm", `plugin "p"`},
	} {
		p := parsePolicy(t, dir, "[[plugin]]\nname = \"p\"\npath = \""+tc.path+"\"\nhosts = [\"api.test\"]\n")
		_, err := ResolveCredentials(context.Background(), p, CredentialOptions{Diag: &syncBuf{}, PluginCacheDir: filepath.Join(dir, "cache")})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.path, err)
		}
	}
}

func mustPattern(t testing.TB, s string) hostmatch.Pattern {
	p, err := hostmatch.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
