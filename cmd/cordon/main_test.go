package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cordonrt "github.com/cordonsh/cordon/runtime"
)

func TestMain(m *testing.M) {
	cordonrt.MaybeInit()
	os.Exit(m.Run())
}

// cli runs the CLI in-process in dir and returns its exit status and output.
func cli(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	if dir != "" {
		t.Chdir(dir)
	}
	var out, errb bytes.Buffer
	code := run(args, stdio{in: os.Stdin, out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestExitStatuses(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("version = 1\n[network]\nallow = [\"*\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"no command", []string{}, 125, "cordon: no command given"},
		{"unknown flag", []string{"--bogus", "--", "true"}, 125, "cordon: flag provided but not defined: -bogus"},
		{"bad policy", []string{"--policy", bad, "--", "true"}, 125, "bad.toml:3:1: network.allow: pattern \"*\" matches every host"},
		{"missing policy", []string{"--policy", filepath.Join(dir, "none.toml"), "--", "true"}, 125, "does not exist"},
		{"bad preset", []string{"--preset", "nope", "--", "true"}, 125, "flags: --preset: no such preset \"nope\""},
		{"bad domain flag", []string{"--allow-domain", "*.com", "--", "true"}, 125, "flags: --allow-domain: pattern \"*.com\""},
		{"bad mode", []string{"--mode", "off", "--", "true"}, 125, "flags: --mode"},
		{"check bad policy", []string{"check", "--policy", bad}, 125, "cordon check: " + bad + ":3:1: network.allow"},
		{"check extra arg", []string{"check", "x"}, 125, "unexpected argument"},
		{"help unknown", []string{"help", "nope"}, 125, "no command \"nope\""},
		{"import usage", []string{"import"}, 125, "Usage: cordon import srt FILE"},
		{"version extra", []string{"version", "x"}, 125, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := cli(t, dir, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := cli(t, "", "--help")
	if code != 0 || !strings.Contains(out, "cordon [flags] -- COMMAND [ARG...]") || !strings.Contains(out, "--allow-domain PATTERN") {
		t.Errorf("--help: %d\n%s", code, out)
	}
	for name := range commands {
		for _, form := range [][]string{{"help", name}, {name, "--help"}, {name, "-h"}} {
			code, out, _ := cli(t, "", form...)
			if code != 0 || !strings.Contains(out, "Usage: cordon "+name) {
				t.Errorf("%q: exit %d, output %q", form, code, out)
			}
		}
		if !strings.Contains(mainUsage(), name) {
			t.Errorf("main usage does not list %q", name)
		}
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := cli(t, dir, "check", "--preset", "claude", "--allow-domain", "example.org")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"# Effective cordon policy, merged from: preset default, preset claude, flags.",
		`"api.anthropic.com:443"`, `"example.org"`,
		"# built-in write-deny list, enforced like deny_write:",
		"#   " + filepath.Join(dir, ".git/hooks"),
		"# built-in env-deny list: *_API_KEY",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	// ./cordon.toml is picked up without --policy.
	if err := os.WriteFile(filepath.Join(dir, "cordon.toml"), []byte("version = 1\n[network]\nallow = [\"only.example\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, dir, "check")
	if code != 0 || !strings.Contains(out, `"only.example"`) || strings.Contains(out, "preset default") {
		t.Errorf("check with ./cordon.toml: %d\n%s", code, out)
	}
}

func TestImportSRT(t *testing.T) {
	code, out, stderr := cli(t, "", "import", "srt", "../../policy/testdata/good/srt.json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "version = 1") || !strings.Contains(out, `"*.github.com"`) {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(stderr, `not imported: ../../policy/testdata/good/srt.json: "network.httpProxyPort" is not supported`) {
		t.Errorf("unsupported keys not reported: %q", stderr)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := cli(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "cordon ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestTrust checks that a ./cordon.toml found in the working directory is used only once
// trusted in its exact content, while --policy needs no trust.
func TestTrust(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	proj := filepath.Join(dir, "proj")
	if err := os.Mkdir(proj, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(proj, "cordon.toml")
	if err := os.WriteFile(file, []byte("version = 1\n[network]\nallow = [\"evil.example\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, proj, "--", "true")
	if code != 125 || !strings.Contains(stderr, file+" is not trusted") {
		t.Fatalf("untrusted file: exit %d, %q", code, stderr)
	}
	code, out, stderr := cli(t, proj, "check")
	if code != 0 || !strings.Contains(stderr, "note: "+file+" is not trusted") || !strings.Contains(out, `"evil.example"`) {
		t.Errorf("check of an untrusted file: exit %d, %q", code, stderr)
	}
	pf := policyFlags{}
	if _, err := pf.load(); err == nil {
		t.Fatal("untrusted file loaded")
	}
	pf = policyFlags{file: file}
	if _, err := pf.load(); err != nil {
		t.Errorf("--policy needs no trust: %v", err)
	}
	if code, out, stderr := cli(t, proj, "trust"); code != 0 || !strings.Contains(out, "trusting "+file) {
		t.Fatalf("trust: exit %d, %q %q", code, out, stderr)
	}
	pf = policyFlags{}
	if _, err := pf.load(); err != nil {
		t.Fatalf("trusted file refused: %v", err)
	}
	if err := os.WriteFile(file, []byte("version = 1\n[network]\nallow = [\"evil.example\", \"more.example\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pf.load(); err == nil || !strings.Contains(err.Error(), "changed since you trusted it") {
		t.Errorf("changed file: %v", err)
	}
	if code, _, _ := cli(t, proj, "trust", "--revoke"); code != 0 {
		t.Errorf("revoke: exit %d", code)
	}
	if err := os.WriteFile(file, []byte("version = 1\n[network]\nallow = [\"*\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, proj, "trust"); code != 125 || !strings.Contains(stderr, "matches every host") {
		t.Errorf("trusting an invalid file: exit %d, %q", code, stderr)
	}
}
