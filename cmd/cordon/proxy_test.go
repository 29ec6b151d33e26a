package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProxyCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello from upstream")
	}))
	defer srv.Close()
	dir := t.TempDir()
	pol := filepath.Join(dir, "proxy.toml")
	audit := filepath.Join(dir, "audit.jsonl")
	data := "version = 1\n[network]\nallow = [\"127.0.0.1\"]\nallow_private = [\"127.0.0.0/8\"]\n[audit]\nlog = \"" + audit + "\"\n"
	if err := os.WriteFile(pol, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- serveProxy(ctx, []string{"--policy", pol, "--token-file", tokenFile, "--listen", "127.0.0.1:0"},
			stdio{in: os.Stdin, out: pw, err: &stderr})
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no URL: %v; stderr %s", err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	u, err := url.Parse(strings.TrimSpace(line))
	if err != nil || u.User.Username() != "cordon" {
		t.Fatalf("URL %q: %v", line, err)
	}
	if pass, _ := u.User.Password(); pass != "0123456789abcdef0123" {
		t.Errorf("token %q, want the one from --token-file", pass)
	}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 10 * time.Second}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hello from upstream" {
		t.Errorf("allowed: %s %q", resp.Status, b)
	}
	resp, err = c.Get("http://127.0.0.2:1/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("blocked: %s", resp.Status)
	}
	c.CloseIdleConnections()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d; stderr %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cordon proxy did not stop")
	}
	for _, want := range []string{"the proxy blocked 1 request to 1 destination", "127.0.0.2:1", "--allow-domain 127.0.0.2:1"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q lacks %q", stderr.String(), want)
		}
	}
	log, _ := os.ReadFile(audit)
	if !strings.Contains(string(log), `"decision":"allow"`) || !strings.Contains(string(log), `"decision":"deny"`) {
		t.Errorf("audit log %s", log)
	}
}

func TestProxyCommandErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	_ = os.WriteFile(short, []byte("abc"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy", "--listen", "nonsense"}, "cordon proxy:"},
		{[]string{"proxy", "--token-file", short}, "at least 16 characters"},
		{[]string{"proxy", "--token-file", filepath.Join(dir, "none")}, "read token"},
		{[]string{"proxy", "extra"}, "unexpected argument"},
		{[]string{"proxy", "--allow-domain", "*.com"}, "--allow-domain"},
	} {
		code, _, stderr := cli(t, dir, tc.args...)
		if code != exitFailure || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.args, code, stderr, tc.want)
		}
	}
}
