package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	pluginBuildMu sync.Mutex
	pluginBuilt   = map[string]string{}
	pluginDir     string
)

// examplePlugin builds one of the example plugins (plugins/examples/NAME) once per test
// binary, as docs/plugins.md tells authors to.
func examplePlugin(t *testing.T, name string) string {
	t.Helper()
	pluginBuildMu.Lock()
	defer pluginBuildMu.Unlock()
	if p, ok := pluginBuilt[name]; ok {
		return p
	}
	if pluginDir == "" {
		d, err := os.MkdirTemp("", "cordon-plugin-cli-")
		if err != nil {
			t.Fatal(err)
		}
		pluginDir = d
	}
	out := filepath.Join(pluginDir, name+".wasm")
	src, err := filepath.Abs(filepath.Join("..", "..", "plugins", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	pluginBuilt[name] = out
	return out
}

func TestPluginTestCommand(t *testing.T) {
	t.Cleanup(func() {
		if pluginDir != "" {
			os.RemoveAll(pluginDir)
		}
	})
	// The compilation cache goes to the user cache dir; keep it inside the test.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("CORDON_TEST_TOKEN", "tok-from-env-77")
	const (
		awsSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
		awsSig    = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	)
	tests := []struct {
		name    string
		plugin  string
		args    []string
		code    int
		want    []string
		notWant []string
	}{
		{"bearer adds the token", "bearer",
			[]string{"--request", "GET https://api.example.com/v1", "--secret", "token=tok-secret-123", "--header", "Authorization: old"},
			0, []string{"result   allowed, 1 header changed", "~ Authorization: old", "-> Bearer <secret token>"}, []string{"tok-secret-123"}},
		{"secret from the environment", "bearer",
			[]string{"--request", "https://api.example.com/", "--secret", "token=env:CORDON_TEST_TOKEN"},
			0, []string{"+ Authorization: Bearer <secret token>"}, []string{"tok-from-env-77"}},
		{"sigv4 test vector", "sigv4",
			[]string{"--request", "GET https://example.amazonaws.com/", "--hosts", "*.amazonaws.com",
				"--header", "X-Amz-Date: 20150830T123600Z", "--config", "region=us-east-1", "--config", "service=service",
				"--secret", "aws_access_key_id=AKIDEXAMPLE", "--secret", "aws_secret_access_key=" + awsSecret},
			0, []string{"+ Authorization: AWS4-HMAC-SHA256 Credential=<secret aws_access_key_id>/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=<signed with secret aws_secret_access_key>"},
			[]string{"AKIDEXAMPLE", awsSecret, awsSig}},
		{"github read-only denies a write", "githubro",
			[]string{"--request", "DELETE https://api.github.com/repos/o/r", "--secret", "github_token=ghp_x"},
			0, []string{"result   denied: 403 Forbidden", "reason   cordon: the GitHub API is read-only in this sandbox; DELETE /repos/o/r refused"}, []string{"ghp_x"}},
		{"a missing secret fails the request", "bearer",
			[]string{"--request", "GET https://api.example.com/"},
			1, []string{"result   FAILED", `used a secret it was not granted: it asked for secret "token"`}, nil},
		{"a secret is not sent over plain HTTP", "bearer",
			[]string{"--request", "GET http://api.example.com/", "--secret", "token=plain-secret"},
			1, []string{"plain HTTP"}, []string{"plain-secret"}},
		{"unbound host", "bearer",
			[]string{"--request", "GET https://api.example.com/", "--hosts", "other.example.com", "--secret", "token=t0k3n"},
			1, []string{"is not among its hosts"}, []string{"t0k3n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wasm := examplePlugin(t, tc.plugin)
			code, out, errOut := cli(t, "", append([]string{"plugin", "test", wasm}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out+errOut, w) {
					t.Errorf("output shows %q:\n%s%s", w, out, errOut)
				}
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		wasm := examplePlugin(t, "githubro")
		code, out, _ := cli(t, "", "plugin", "test", "--json", "--request", "GET https://api.github.com/user", "--secret", "github_token=ghp_json", wasm)
		var res pluginTestResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
			t.Fatalf("exit %d, %v:\n%s", code, err, out)
		}
		if res.Result != "allowed" || len(res.Changes) != 1 || res.Changes[0].After[0] != "Bearer <secret github_token>" || strings.Contains(out, "ghp_json") {
			t.Fatalf("%+v", res)
		}
	})
}

func TestPluginTestUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"plugin"}, "Usage: cordon plugin test"},
		{"no module", []string{"plugin", "test", "--request", "GET https://a.example.com/"}, "give one PLUGIN.wasm"},
		{"no request", []string{"plugin", "test", "x.wasm"}, "--request 'METHOD URL' is required"},
		{"bad url", []string{"plugin", "test", "x.wasm", "--request", "GET ftp://a/"}, "is not an http:// or https:// URL"},
		{"bad header", []string{"plugin", "test", "x.wasm", "--request", "GET https://a.example.com/", "--header", "nocolon"}, "want 'NAME: VALUE'"},
		{"bad secret", []string{"plugin", "test", "x.wasm", "--request", "GET https://a.example.com/", "--secret", "novalue"}, "want NAME=VALUE"},
		{"unset env secret", []string{"plugin", "test", "x.wasm", "--request", "GET https://a.example.com/", "--secret", "t=env:CORDON_NOT_SET_X"}, "CORDON_NOT_SET_X is not set"},
		{"bad size", []string{"plugin", "test", "x.wasm", "--request", "GET https://a.example.com/", "--memory-limit", "lots"}, "not a size"},
		{"bad hosts", []string{"plugin", "test", "x.wasm", "--request", "GET https://a.example.com/", "--hosts", "a*b"}, "--hosts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := cli(t, "", tc.args...)
			if code != exitFailure || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 125 and %q", code, errOut, tc.want)
			}
		})
	}
	t.Run("missing module file", func(t *testing.T) {
		t.Setenv("XDG_CACHE_HOME", t.TempDir())
		code, out, _ := cli(t, "", "plugin", "test", filepath.Join(t.TempDir(), "none.wasm"), "--request", "GET https://a.example.com/")
		if code != 1 || !strings.Contains(out, "no such file") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
}
