package runtime

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cordonsh/cordon/netproxy"
	"github.com/cordonsh/cordon/policy"
)

// canary returns a unique random secret for one test.
func canary(t testing.TB) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "cordon-canary-" + hex.EncodeToString(b[:])
}

// parsePolicy parses a policy text with dir as home and working directory.
func parsePolicy(t testing.TB, dir, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(filepath.Join(dir, "cordon.toml"), []byte("version = 1\n"+text), policy.Env{Home: dir, Cwd: dir})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuf is a buffer safe for the concurrent writes of a command's stderr.
type syncBuf struct {
	bytes.Buffer
}

func TestResolveSecretSources(t *testing.T) {
	dir := t.TempDir()
	secret := canary(t)
	if err := os.WriteFile(filepath.Join(dir, "tok"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "crlf"), []byte(secret+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"TOKEN=" + secret, "EMPTY="}
	for _, tc := range []struct {
		name    string
		from    string
		want    string // the value, or "" for an error
		errText string // in the error
		diag    string // in Diag
	}{
		{"env", "env:TOKEN", secret, "", ""},
		{"env unset", "env:NOPE", "", `secret "s": the environment variable NOPE is not set`, ""},
		{"env empty", "env:EMPTY", "", "is not set", ""},
		{"file", "file:" + filepath.Join(dir, "tok"), secret, "", ""},
		{"file crlf", "file:" + filepath.Join(dir, "crlf"), secret, "", ""},
		{"file missing", "file:" + filepath.Join(dir, "nope"), "", "does not exist", ""},
		{"file empty", "file:" + filepath.Join(dir, "empty"), "", "is empty", ""},
		{"cmd", "cmd:printf '%s\\n' \"$TOKEN\"", secret, "", ""},
		{"cmd stderr shown", "cmd:echo prompt-text >&2; echo $TOKEN", secret, "", "prompt-text"},
		{"cmd fails", "cmd:echo $TOKEN; exit 3", "", `secret "s" (cmd): the command exited with status 3 (its output is not shown)`, ""},
		{"cmd prints nothing", "cmd:true", "", "printed nothing", ""},
		{"cmd too much", "cmd:head -c 100000 /dev/zero", "", "more than", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var diag syncBuf
			p := parsePolicy(t, dir, "[secrets]\ns = "+quote(tc.from)+"\n[[credential]]\nhosts = [\"api.test\"]\nheader = \"X-Key\"\nsecret = \"s\"\n")
			c, err := ResolveCredentials(context.Background(), p, CredentialOptions{Env: env, Dir: dir, Diag: &diag})
			if tc.want == "" {
				if err == nil || !errors.Is(err, ErrSecret) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err %v, want one with %q", err, tc.errText)
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(diag.String(), secret) {
					t.Errorf("the error or the diagnostics show the value: %v / %q", err, diag.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			if got := string(c.secrets["s"]); got != tc.want {
				t.Errorf("value %q, want %q", got, tc.want)
			}
			if len(c.rules) != 1 || c.rules[0].Value != tc.want {
				t.Errorf("rules %d", len(c.rules))
			}
			if !strings.Contains(diag.String(), tc.diag) {
				t.Errorf("diag %q lacks %q", diag.String(), tc.diag)
			}
		})
	}
}

func quote(s string) string {
	return `'''` + s + `'''`
}

func TestSecretCmdTimeout(t *testing.T) {
	dir := t.TempDir()
	p := parsePolicy(t, dir, "[secrets]\ns = \"cmd:sleep 30 & sleep 30\"\n[[credential]]\nhosts = [\"api.test\"]\nheader = \"X-Key\"\nsecret = \"s\"\n")
	start := time.Now()
	_, err := ResolveCredentials(context.Background(), p, CredentialOptions{Dir: dir, Diag: &syncBuf{}, CmdTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not finish within 200ms") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s: the background child kept the command alive", d)
	}
}

func TestOptionalSecrets(t *testing.T) {
	dir := t.TempDir()
	secret := canary(t)
	p := parsePolicy(t, dir, `
[secrets]
present = "env:PRESENT"
absent = { from = "env:ABSENT", optional = true }
[[credential]]
hosts = ["a.test"]
header = "X-A"
secret = "absent"
[[credential]]
hosts = ["b.test"]
header = "X-B"
value = "Bearer {secret}"
secret = "present"
[[upstream]]
name = "gone"
url = "https://api.gone.test"
env = "GONE_BASE_URL"
placeholders = { GONE_KEY = "placeholder" }
[upstream.credential]
header = "x-api-key"
secret = "absent"
[[upstream]]
name = "kept"
url = "https://api.kept.test/v1/"
env = "KEPT_BASE_URL"
[upstream.credential]
header = "x-api-key"
secret = "present"
`)
	var diag syncBuf
	c, err := ResolveCredentials(context.Background(), p, CredentialOptions{Env: []string{"PRESENT=" + secret, "OTHER=1"}, Diag: &diag})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if len(c.rules) != 1 || c.rules[0].Header != "X-B" || c.rules[0].Value != "Bearer "+secret {
		t.Errorf("rules %+v", c.rules)
	}
	if got := c.Routes(); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("routes %v, want only the one whose secret is present", got)
	}
	for _, want := range []string{`secret "absent": the environment variable ABSENT is not set; credential[0]`, `upstream "gone"`} {
		if !strings.Contains(diag.String(), want) {
			t.Errorf("diag %q lacks %q", diag.String(), want)
		}
	}

	var cfg netproxy.Config
	c.ProxyConfig(&cfg, false)
	if len(cfg.Credentials) != 1 || len(cfg.Routes) != 1 || cfg.Routes[0].PathToken != "" || cfg.Redactor.Empty() {
		t.Errorf("proxy config %+v", cfg)
	}
	env := c.CommandEnv([]string{"PRESENT=" + secret, "ABSENT=x", "OTHER=1", "KEPT_BASE_URL=old"},
		map[string]string{"kept": "127.0.0.1:3129"}, nil)
	want := []string{"OTHER=1", "KEPT_BASE_URL=http://127.0.0.1:3129"}
	if !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
	if slices.ContainsFunc(env, func(kv string) bool { return strings.Contains(kv, secret) }) {
		t.Error("the environment holds the secret")
	}

	// With path tokens (a listener on the host's loopback) the URL carries one.
	var cfg2 netproxy.Config
	c.ProxyConfig(&cfg2, true)
	tok := cfg2.Routes[0].PathToken
	env = c.CommandEnv(nil, map[string]string{"kept": "127.0.0.1:40000"}, nil)
	if len(tok) != 32 || !slices.Equal(env, []string{"KEPT_BASE_URL=http://127.0.0.1:40000/" + tok}) {
		t.Errorf("token %q env %q", tok, env)
	}
	if _, err := netproxy.New(netproxy.Config{Token: "t", Credentials: cfg.Credentials, Routes: cfg2.Routes, Redactor: cfg.Redactor}); err != nil {
		t.Errorf("the proxy refuses the configuration: %v", err)
	}
}

func TestSecretsHiddenFromCommand(t *testing.T) {
	dir := t.TempDir()
	secret := canary(t)
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	// Unused secrets are hidden too, and never resolved (the command would fail).
	p := parsePolicy(t, dir, `
[secrets]
used = "file:key"
unused_env = "env:UNUSED_VAR"
unused_cmd = "cmd:exit 1"
unused_file = "file:missing"
[[upstream]]
name = "anthropic"
url = "https://api.anthropic.com"
env = "ANTHROPIC_BASE_URL"
placeholders = { ANTHROPIC_API_KEY = "cordon-placeholder" }
[upstream.credential]
header = "x-api-key"
secret = "used"
`)
	c, err := ResolveCredentials(context.Background(), p, CredentialOptions{Diag: &syncBuf{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.DenyRead(); !slices.Equal(got, []string{file}) {
		t.Errorf("deny read %v, want the file secret", got)
	}
	ca := &CABundle{Bundle: "/tmp/x/bundle.pem", CA: "/tmp/x/ca.pem"}
	env := c.CommandEnv([]string{"UNUSED_VAR=v", "ANTHROPIC_API_KEY=real", "PATH=/bin"}, map[string]string{"anthropic": "127.0.0.1:3129"}, ca)
	for _, want := range []string{"PATH=/bin", "ANTHROPIC_BASE_URL=http://127.0.0.1:3129", "ANTHROPIC_API_KEY=cordon-placeholder",
		"SSL_CERT_FILE=/tmp/x/bundle.pem", "NODE_EXTRA_CA_CERTS=/tmp/x/ca.pem", "REQUESTS_CA_BUNDLE=/tmp/x/bundle.pem",
		"CURL_CA_BUNDLE=/tmp/x/bundle.pem", "GIT_SSL_CAINFO=/tmp/x/bundle.pem", "PIP_CERT=/tmp/x/bundle.pem",
		"AWS_CA_BUNDLE=/tmp/x/bundle.pem", "DENO_CERT=/tmp/x/bundle.pem"} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %q: %q", want, env)
		}
	}
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "UNUSED_VAR=") || strings.Contains(kv, "=real") }) {
		t.Errorf("a secret's variable survived: %q", env)
	}
	value := c.secrets["used"]
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(value, make([]byte, len(value))) {
		t.Error("Close left the secret in memory")
	}
}

func TestSecretValueMustFitAHeader(t *testing.T) {
	dir := t.TempDir()
	secret := canary(t)
	p := parsePolicy(t, dir, "[secrets]\ns = \"env:S\"\n[[credential]]\nhosts = [\"api.test\"]\nheader = \"X-Key\"\nsecret = \"s\"\n")
	for _, v := range []string{secret + "\nX-Injected: 1", secret + "\x00", " " + secret} {
		_, err := ResolveCredentials(context.Background(), p, CredentialOptions{Env: []string{"S=" + v}, Diag: &syncBuf{}})
		if err == nil || !strings.Contains(err.Error(), `"s" cannot go into a header`) || strings.Contains(err.Error(), secret) {
			t.Errorf("value %q: %v", v, err)
		}
	}
}

func TestWriteCABundle(t *testing.T) {
	dir := t.TempDir()
	roots := filepath.Join(dir, "roots.pem")
	rootPEM := "-----BEGIN CERTIFICATE-----\nUk9PVA==\n-----END CERTIFICATE-----\n"
	if err := os.WriteFile(roots, []byte(rootPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	caPEM := []byte("-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n")
	b, err := WriteCABundle(dir, caPEM, []string{"SSL_CERT_FILE=" + roots})
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := os.ReadFile(b.Bundle)
	ca, _ := os.ReadFile(b.CA)
	if string(bundle) != rootPEM+string(caPEM) || !bytes.Equal(ca, caPEM) {
		t.Errorf("bundle %q ca %q", bundle, ca)
	}
	// Without SSL_CERT_FILE, the system's bundle (when there is one).
	b, err = WriteCABundle(t.TempDir(), caPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ = os.ReadFile(b.Bundle)
	if !bytes.HasSuffix(bundle, caPEM) {
		t.Error("the bundle does not end with the CA")
	}
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil && bytes.Count(bundle, []byte("BEGIN CERTIFICATE")) < 10 {
		t.Error("the bundle lacks the system's roots")
	}
}
