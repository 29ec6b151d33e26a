package netproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// curl runs curl with args and returns its stdout, stderr and exit code. It skips the test
// if curl is not installed. Name resolution for the test names happens in the proxy, never
// in curl: plain HTTP and CONNECT send the name, and SOCKS5 uses socks5h://.
func curl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed; these cases need it (apt-get install curl)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"--silent", "--show-error", "--noproxy", ""}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestCurl(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	httpProxy := e.p.URL(e.addr)
	socksProxy := "socks5h://cordon:" + testToken + "@" + e.addr
	ca := testCerts().pemFile
	h, s := port(up.http), port(up.https)

	for _, tc := range []struct {
		name string
		args []string
		want string // in stdout
	}{
		{"http", []string{"-x", httpProxy, "http://allowed.test:" + h + "/curl"}, `"URI":"/curl"`},
		{"http keep-alive", []string{"-x", httpProxy, "http://allowed.test:" + h + "/a", "http://www.allowed.test:" + h + "/b"}, `"URI":"/b"`},
		{"http upload", []string{"-x", httpProxy, "--data-binary", "hello", "http://allowed.test:" + h + "/"}, `"BodyLen":5`},
		{"http chunked upload", []string{"-x", httpProxy, "-H", "Transfer-Encoding: chunked", "--data-binary", "hello", "http://allowed.test:" + h + "/"}, `"BodyLen":5`},
		{"http expect 100", []string{"-x", httpProxy, "-H", "Expect: 100-continue", "--data-binary", "hello", "http://allowed.test:" + h + "/"}, `"BodyLen":5`},
		{"https over CONNECT", []string{"-x", httpProxy, "--cacert", ca, "https://allowed.test:" + s + "/tls"}, `"URI":"/tls"`},
		{"https over CONNECT with proxytunnel for http", []string{"-p", "-x", httpProxy, "http://allowed.test:" + h + "/tunnel"}, `"URI":"/tunnel"`},
		{"http over socks5h", []string{"-x", socksProxy, "http://allowed.test:" + h + "/socks"}, `"URI":"/socks"`},
		{"https over socks5h", []string{"-x", socksProxy, "--cacert", ca, "https://www.allowed.test:" + s + "/socks-tls"}, `"URI":"/socks-tls"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := curl(t, tc.args...)
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, tc.want)
			}
			if strings.Contains(out, "Proxy-Authorization") {
				t.Errorf("the token reached the upstream: %s", out)
			}
		})
	}

	t.Run("blocked http", func(t *testing.T) {
		out, _, _ := curl(t, "-x", httpProxy, "-i", "http://denied.test:"+h+"/")
		for _, want := range []string{"HTTP/1.1 403 Forbidden", "X-Cordon-Block: denied.test:" + h + " is not in network.allow", "--allow-domain denied.test:" + h} {
			if !strings.Contains(out, want) {
				t.Errorf("output %q lacks %q", out, want)
			}
		}
	})
	t.Run("blocked https", func(t *testing.T) {
		_, errOut, code := curl(t, "-x", httpProxy, "--cacert", ca, "https://denied.test:"+s+"/")
		if code == 0 || !strings.Contains(errOut, "403") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("blocked socks5h", func(t *testing.T) {
		_, errOut, code := curl(t, "-x", socksProxy, "http://denied.test:"+h+"/")
		// Older curl prints the reply code, newer curl its meaning.
		if code != 97 && code != 7 || !strings.Contains(errOut, "(2)") && !strings.Contains(strings.ToLower(errOut), "not allowed") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("no token", func(t *testing.T) {
		out, _, _ := curl(t, "-x", "http://"+e.addr, "-i", "http://allowed.test:"+h+"/")
		if !strings.Contains(out, "407") || !strings.Contains(out, `Proxy-Authenticate: Basic realm="cordon"`) {
			t.Errorf("output %q", out)
		}
		_, errOut, code := curl(t, "-x", "socks5h://"+e.addr, "http://allowed.test:"+h+"/")
		if code == 0 {
			t.Errorf("socks5h without credentials: exit 0, %q", errOut)
		}
		_, errOut, code = curl(t, "-x", "socks5h://cordon:wrong@"+e.addr, "http://allowed.test:"+h+"/")
		if code == 0 {
			t.Errorf("socks5h with a wrong token: exit 0, %q", errOut)
		}
	})
}

func TestCurlIntercepted(t *testing.T) {
	leakCheck(t)
	secret := canary(t)
	up := startUpstreams(t)
	e := startProxy(t, credConfig(secret))
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, e.p.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	u := "https://api.allowed.test:" + port(up.https) + "/curl"
	for _, proto := range []string{"--http1.1", "--http2"} {
		t.Run(proto, func(t *testing.T) {
			out, errOut, code := curl(t, "-x", e.p.URL(e.addr), "--cacert", ca, proto, "-w", "|%{http_version}",
				"-H", "Authorization: Bearer from-the-command", u)
			if code != 0 {
				t.Fatalf("curl exit %d: %s", code, errOut)
			}
			i := strings.LastIndex(out, "|")
			if i < 0 {
				t.Fatalf("curl output %q", out)
			}
			body, version := out[:i], out[i+1:]
			var info echoInfo
			if err := json.Unmarshal([]byte(body), &info); err != nil {
				t.Fatalf("%q: %v", out, err)
			}
			if got := info.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+secret {
				t.Errorf("upstream saw Authorization %q", got)
			}
			if want := map[string]string{"--http1.1": "1.1", "--http2": "2"}[proto]; version != want {
				t.Errorf("curl spoke HTTP/%s to the proxy, want %s", version, want)
			}
		})
	}
	// curl trusting only the upstream's root refuses cordon's certificate.
	if _, _, code := curl(t, "-x", e.p.URL(e.addr), "--cacert", testCerts().pemFile, u); code != 60 {
		t.Errorf("curl without cordon's CA: exit %d, want 60 (certificate problem)", code)
	}
}
