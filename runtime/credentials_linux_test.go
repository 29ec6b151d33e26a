package runtime_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cordonsh/cordon/netproxy"
	"github.com/cordonsh/cordon/policy"
	cordonrt "github.com/cordonsh/cordon/runtime"
)

// testCanary returns a unique random secret.
func testCanary() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "cordon-canary-" + hex.EncodeToString(b[:])
}

// loopbackNames resolves every name to 127.0.0.1, for the test upstreams.
type loopbackNames struct{}

func (loopbackNames) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// credUpstream is an HTTPS server for api.test and other.test that records the credential
// headers it gets and never sends them back: the command must not learn the secret from it.
type credUpstream struct {
	srv  *httptest.Server
	pool *x509.CertPool
	mu   sync.Mutex
	seen []string // "host path authorization x-api-key" per request
}

func startCredUpstream(t *testing.T, wantAuth, wantKey string) *credUpstream {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
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
	u := &credUpstream{pool: x509.NewCertPool()}
	u.pool.AddCert(cert)
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, key := r.Header.Values("Authorization"), r.Header.Values("X-Api-Key")
		u.mu.Lock()
		u.seen = append(u.seen, fmt.Sprintf("%s %s auth=%d key=%d", r.Host, r.URL.Path, len(auth), len(key)))
		u.mu.Unlock()
		verdict := func(got []string, want string) string {
			switch {
			case len(got) == 0:
				return "none"
			case len(got) == 1 && got[0] == want:
				return "ok"
			}
			return "wrong"
		}
		if strings.HasSuffix(r.URL.Path, "/events") {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "data: event %d key=%s\n\n", i, verdict(key, wantKey))
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
			return
		}
		fmt.Fprintf(w, "upstream %s%s auth=%s key=%s\n", r.Host, r.URL.Path, verdict(auth, wantAuth), verdict(key, wantKey))
	}))
	u.srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	u.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes that tests fail on purpose
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	return u
}

// TestCredentialsEndToEnd runs curl in the sandbox against an HTTPS upstream with a
// credential rule and an upstream route. The upstream gets the credentials; the command
// never sees a secret: not in its environment, not in /proc, not in the files it can read,
// not in cordon's messages or the audit log.
func TestCredentialsEndToEnd(t *testing.T) {
	s := newSandbox(t)
	if _, err := exec.LookPath("curl"); err != nil {
		need(t, false, "curl is not installed")
	}
	apiSecret, routeSecret := testCanary(), testCanary()
	up := startCredUpstream(t, "Bearer "+apiSecret, routeSecret)
	_, port, _ := net.SplitHostPort(up.srv.Listener.Addr().String())
	defer cordonrt.SetTestProxyHook(func(c *netproxy.Config) {
		c.Resolver = loopbackNames{}
		c.UpstreamRoots = up.pool
	})()

	keyFile := filepath.Join(s.home, ".config", "routekey")
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(routeSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(s.root, "audit.jsonl")
	text := fmt.Sprintf(`version = 1
presets = ["default"]
[network]
allow = ["api.test", "other.test"]
allow_private = ["127.0.0.0/8"]
[sandbox]
mode = %q
[audit]
log = %q
[secrets]
api = "env:API_TOKEN"
routekey = "file:~/.config/routekey"
[[credential]]
hosts = ["api.test"]
header = "Authorization"
value = "Bearer {secret}"
secret = "api"
[[upstream]]
name = "stream"
url = "https://api.test:%s/base"
env = "STREAM_BASE_URL"
placeholders = { STREAM_API_KEY = "cordon-placeholder" }
[upstream.credential]
header = "x-api-key"
secret = "routekey"
`, testMode(), audit, port)
	p, err := policy.Parse("creds.toml", []byte(text), policy.Env{Home: s.home, Cwd: s.proj})
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`
set -u
echo "== env"; env
echo "== environ"; cat /proc/self/environ | tr '\0' '\n'
echo "== procs"; for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do cat "$f" 2>/dev/null | tr '\0' ' '; echo; done
echo "== tmp"; ls -la "$TMPDIR"; cat "$TMPDIR"/* 2>&1
echo "== keyfile"; cat %q 2>&1 || echo "keyfile: unreadable"
echo "== api"; curl -sS --max-time 20 -H "Authorization: Bearer from-the-command" https://api.test:%s/api 2>&1
echo "== other"; curl -sS --max-time 20 --cacert %q https://other.test:%s/other 2>&1
echo "== route"; curl -sS --max-time 20 -N -H "x-api-key: $STREAM_API_KEY" "$STREAM_BASE_URL/v1/events" 2>&1
echo "== plain"; curl -sS --max-time 20 -o /dev/null -w '%%{http_code}\n' http://api.test:1/ 2>&1
echo "== end"
`, keyFile, port, filepath.Join(s.root, "upstream-root.pem"), port)
	if err := os.WriteFile(filepath.Join(s.root, "upstream-root.pem"), pemCert(up.srv.TLS.Certificates[0].Certificate[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.home, "LANG=C", "API_TOKEN=" + apiSecret}
	r := s.runWith(p, env, nil, "sh", "-c", script)
	if r.err != nil || r.code() != 0 {
		t.Fatalf("run: %v (exit %d)\nstdout:\n%s\nstderr:\n%s\ndiag:\n%s", r.err, r.code(), r.stdout, r.stderr, r.diag)
	}
	out := r.stdout
	if testing.Verbose() {
		t.Logf("stdout:\n%s\ndiag:\n%s", out, r.diag)
	}
	section := func(name string) string {
		_, rest, _ := strings.Cut(out, "== "+name+"\n")
		body, _, _ := strings.Cut(rest, "\n== ")
		return body
	}
	for _, want := range []struct{ section, text string }{
		{"api", "upstream api.test:" + port + "/api auth=ok key=none"},
		{"other", "upstream other.test:" + port + "/other auth=none key=none"},
		{"route", "data: event 2 key=ok"},
		{"keyfile", "keyfile: unreadable"},
		{"env", "STREAM_BASE_URL=http://127.0.0.1:"},
		{"env", "STREAM_API_KEY=cordon-placeholder"},
		{"env", "SSL_CERT_FILE=" + "/"},
		{"tmp", "BEGIN CERTIFICATE"},
	} {
		if !strings.Contains(section(want.section), want.text) {
			t.Errorf("section %s lacks %q:\n%s", want.section, want.text, section(want.section))
		}
	}
	if strings.Contains(section("env"), "API_TOKEN=") {
		t.Error("the env: secret's variable reached the command")
	}
	if !strings.Contains(out, "== end") {
		t.Errorf("the script did not finish:\n%s", out)
	}
	auditLog, _ := os.ReadFile(audit)
	for name, text := range map[string]string{
		"the command's output": out, "the command's stderr": r.stderr, "cordon's messages": r.diag, "the audit log": string(auditLog),
	} {
		for _, secret := range []string{apiSecret, routeSecret} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds a secret", name)
			}
		}
	}
	if !strings.Contains(string(auditLog), `"credentials":["credential[0]"]`) || !strings.Contains(string(auditLog), `"route":"stream"`) {
		t.Errorf("the audit log does not record the credentials:\n%s", auditLog)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, line := range up.seen {
		if strings.Contains(line, "auth=2") || strings.Contains(line, "key=2") {
			t.Errorf("the upstream got a duplicated credential header: %s", line)
		}
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestClaudePresetRoute: with ANTHROPIC_API_KEY set outside, the claude preset gives the
// command a local ANTHROPIC_BASE_URL and a placeholder key, never the key; without it, the
// route is left out with a note.
func TestClaudePresetRoute(t *testing.T) {
	s := newSandbox(t)
	text := fmt.Sprintf("version = 1\npresets = [\"claude\"]\n[sandbox]\nmode = %q\n", testMode())
	p, err := policy.Parse("claude.toml", []byte(text), policy.Env{Home: s.home, Cwd: s.proj})
	if err != nil {
		t.Fatal(err)
	}
	secret := testCanary()
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.home, "LANG=C"}
	r := s.runWith(p, append(base, "ANTHROPIC_API_KEY="+secret), nil, "sh", "-c", "env; cat /proc/self/environ")
	if r.err != nil || r.code() != 0 {
		t.Fatalf("run: %v %s %s", r.err, r.stderr, r.diag)
	}
	if !strings.Contains(r.stdout, "ANTHROPIC_BASE_URL=http://127.0.0.1:") || !strings.Contains(r.stdout, "ANTHROPIC_API_KEY=cordon-placeholder") {
		t.Errorf("environment:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr+r.diag, secret) {
		t.Error("the key reached the command or cordon's messages")
	}

	r = s.runWith(p, base, nil, "sh", "-c", "env")
	if r.err != nil || strings.Contains(r.stdout, "ANTHROPIC_BASE_URL") || strings.Contains(r.stdout, "ANTHROPIC_API_KEY") {
		t.Errorf("without the key: %v\n%s", r.err, r.stdout)
	}
	if !strings.Contains(r.diag, `upstream "anthropic"`) {
		t.Errorf("no note that the route is left out: %q", r.diag)
	}
}

// TestPluginEndToEnd runs curl in the sandbox against a host bound to the bearer example
// plugin: the upstream gets the token, the command never sees it, and the plugins'
// compilation cache stays read-only to the command even where allow_write covers it.
func TestPluginEndToEnd(t *testing.T) {
	s := newSandbox(t)
	if _, err := exec.LookPath("curl"); err != nil {
		need(t, false, "curl is not installed")
	}
	src := "../plugins/examples/bearer"
	if _, err := os.Stat(src); err != nil {
		t.Skipf("the plugin's sources are not at %s (the test binary runs outside its package directory)", src)
	}
	wasm := filepath.Join(s.root, "bearer.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", wasm, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	secret := testCanary()
	up := startCredUpstream(t, "Bearer "+secret, "")
	_, port, _ := net.SplitHostPort(up.srv.Listener.Addr().String())
	defer cordonrt.SetTestProxyHook(func(c *netproxy.Config) {
		c.Resolver = loopbackNames{}
		c.UpstreamRoots = up.pool
	})()
	text := fmt.Sprintf(`version = 1
presets = ["default"]
[filesystem]
allow_write = ["~/.cache"]
builtin_deny_write = false # the cache is protected for plugins' sake, not by the built-in list
[network]
allow = ["api.test"]
allow_private = ["127.0.0.0/8"]
[sandbox]
mode = %q
[secrets]
token = "env:PLUGIN_TOKEN"
[[plugin]]
name = "bearer"
path = %q
hosts = ["api.test"]
secrets = ["token"]
`, testMode(), wasm)
	p, err := policy.Parse("plugin.toml", []byte(text), policy.Env{Home: s.home, Cwd: s.proj})
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(s.home, ".cache", "cordon", "wasm")
	script := fmt.Sprintf(`
echo "== api"; curl -sS --max-time 20 -H "Authorization: Bearer from-the-command" https://api.test:%s/api 2>&1
echo "== cache"; touch %q/planted 2>&1 || echo "cache: read-only"
echo "== env"; env
echo "== end"
`, port, cache)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.home, "LANG=C", "PLUGIN_TOKEN=" + secret}
	r := s.runWith(p, env, nil, "sh", "-c", script)
	if r.err != nil || r.code() != 0 {
		t.Fatalf("run: %v (exit %d)\n%s\n%s\n%s", r.err, r.code(), r.stdout, r.stderr, r.diag)
	}
	for _, want := range []string{"upstream api.test:" + port + "/api auth=ok", "cache: read-only", "== end"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(cache, "planted")); err == nil {
		t.Error("the command wrote into the plugins' compilation cache")
	}
	if strings.Contains(r.stdout+r.stderr+r.diag, secret) {
		t.Error("the token reached the command or cordon's messages")
	}
}

// TestInterceptionClients checks that the usual runtimes trust the run's CA through the
// variables cordon sets, name constraints and all: Python (urllib: HTTPS_PROXY and
// SSL_CERT_FILE) and Node.js (NODE_EXTRA_CA_CERTS, with a CONNECT of its own, since Node 20
// does not read HTTPS_PROXY).
func TestInterceptionClients(t *testing.T) {
	s := newSandbox(t)
	for _, tool := range []string{"python3", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(t, false, tool+" is not installed")
		}
	}
	secret := testCanary()
	up := startCredUpstream(t, "Bearer "+secret, "")
	_, port, _ := net.SplitHostPort(up.srv.Listener.Addr().String())
	defer cordonrt.SetTestProxyHook(func(c *netproxy.Config) {
		c.Resolver = loopbackNames{}
		c.UpstreamRoots = up.pool
	})()
	text := fmt.Sprintf(`version = 1
presets = ["default"]
[network]
allow = ["api.test"]
allow_private = ["127.0.0.0/8"]
[sandbox]
mode = %q
[secrets]
api = "env:API_TOKEN"
[[credential]]
hosts = ["api.test"]
header = "Authorization"
value = "Bearer {secret}"
secret = "api"
`, testMode())
	p, err := policy.Parse("clients.toml", []byte(text), policy.Env{Home: s.home, Cwd: s.proj})
	if err != nil {
		t.Fatal(err)
	}
	python := fmt.Sprintf(`import urllib.request
print(urllib.request.urlopen("https://api.test:%s/python", timeout=20).read().decode(), end="")`, port)
	node := fmt.Sprintf(`const http = require("http"), tls = require("tls");
const proxy = new URL(process.env.HTTPS_PROXY);
const req = http.request({host: proxy.hostname, port: proxy.port, method: "CONNECT", path: "api.test:%[1]s",
  headers: proxy.username ? {"Proxy-Authorization": "Basic " + Buffer.from(decodeURIComponent(proxy.username) + ":" + decodeURIComponent(proxy.password)).toString("base64")} : {}});
req.on("connect", (res, socket) => {
  if (res.statusCode !== 200) { console.log("CONNECT " + res.statusCode); process.exit(1); }
  const s = tls.connect({socket, servername: "api.test"}, () => {
    s.write("GET /node HTTP/1.1\r\nHost: api.test:%[1]s\r\nConnection: close\r\n\r\n");
  });
  let out = ""; s.on("data", d => out += d); s.on("end", () => console.log(out.split("\r\n\r\n")[1].trim()));
  s.on("error", e => { console.log("TLS error: " + e.message); process.exit(1); });
});
req.on("error", e => { console.log("error: " + e.message); process.exit(1); });
req.end();`, port)
	if err := os.WriteFile(filepath.Join(s.proj, "client.py"), []byte(python), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.proj, "client.js"), []byte(node), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.home, "LANG=C", "API_TOKEN=" + secret}
	r := s.runWith(p, env, nil, "sh", "-c", "python3 client.py 2>&1; node client.js 2>&1")
	if r.err != nil {
		t.Fatalf("run: %v\n%s\n%s", r.err, r.stdout, r.diag)
	}
	for _, want := range []string{"/python auth=ok", "/node auth=ok"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, r.stdout, r.diag)
		}
	}
	if strings.Contains(r.stdout+r.stderr+r.diag, secret) {
		t.Error("the token reached the command or cordon's messages")
	}
}
