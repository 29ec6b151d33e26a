package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cordonsh/cordon/policy"
	cordonrt "github.com/cordonsh/cordon/runtime"
)

// The escape suite runs in the mode named by CORDON_TEST_MODE ("namespace", the default, or
// "fallback"). A test that needs something this machine lacks skips with the reason, unless
// CORDON_TEST_REQUIRE=1 (set by scripts/escape-suite.sh for CI), which turns the skip into a
// failure.

const superviseArg = "cordon-supervise"

func TestMain(m *testing.M) {
	cordonrt.MaybeInit()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case attemptArg:
			os.Exit(runAttempt(os.Args[2:]))
		case superviseArg:
			os.Exit(runSupervise(os.Args[2:]))
		}
	}
	os.Exit(m.Run())
}

// runSupervise is a minimal cordon: "<test binary> cordon-supervise POLICY HOME DIR -- CMD...".
// Tests use it where they need cordon as a process of its own (SIGKILL, tmux).
func runSupervise(args []string) int {
	if len(args) < 5 || args[3] != "--" {
		fmt.Fprintln(os.Stderr, "usage: cordon-supervise POLICY HOME DIR -- CMD...")
		return 125
	}
	pol, err := policy.Load(policy.Options{File: args[0], Env: policy.Env{Home: args[1], Cwd: args[2]}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cordon:", err)
		return 125
	}
	res, err := cordonrt.Run(context.Background(), cordonrt.Config{Policy: pol, Args: args[4:], Dir: args[2]})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cordon:", err)
		switch {
		case errors.Is(err, cordonrt.ErrNotFound):
			return 127
		case errors.Is(err, cordonrt.ErrNotExecutable):
			return 126
		}
		return 125
	}
	return res.ExitCode
}

var (
	supportOnce sync.Once
	support     cordonrt.Support
)

func machine() cordonrt.Support {
	supportOnce.Do(func() { support = cordonrt.Probe() })
	return support
}

func testMode() policy.Mode {
	if os.Getenv("CORDON_TEST_MODE") == "fallback" {
		return policy.ModeFallback
	}
	return policy.ModeNamespace
}

func fallback() bool { return testMode() == policy.ModeFallback }

// need skips (or, under CORDON_TEST_REQUIRE=1, fails) unless ok.
func need(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CORDON_TEST_REQUIRE") == "1" {
		t.Fatalf("required but missing: %s", why)
	}
	t.Skip(why)
}

// sandbox is a fake home and project for one test, and the means to run commands in them.
type sandbox struct {
	t    *testing.T
	root string
	home string // fake home: .ssh/id_rsa, .aws/credentials
	proj string // the working directory: a git repository with a .env
	out  string // outside the policy: the sandbox may read, not write
	bin  string // the test binary, the attempt tool
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	s := machine()
	need(t, s.Landlock > 0, "Landlock is not available")
	need(t, s.Seccomp, "seccomp is not available")
	if !fallback() {
		need(t, s.UserNamespaces, "user namespaces are refused: "+s.UserNamespacesError)
	} else {
		need(t, s.Landlock >= 6, "fallback mode needs Landlock ABI 6 here")
	}
	root := t.TempDir()
	// t.TempDir's parents may be private to the user; the sandbox runs as the same user.
	sb := &sandbox{t: t, root: root, home: filepath.Join(root, "home"), proj: filepath.Join(root, "home", "proj"), out: filepath.Join(root, "outside")}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sb.bin = bin
	for path, content := range map[string]string{
		"home/.ssh/id_rsa":        "PRIVATE KEY\n",
		"home/.ssh/config":        "Host *\n",
		"home/.aws/credentials":   "aws_secret_access_key = SECRET\n",
		"home/notes.txt":          "home notes\n",
		"home/proj/main.go":       "package main\n",
		"home/proj/.env":          "API_KEY=SECRET\n",
		"home/proj/sub/data.txt":  "data\n",
		"outside/readable.txt":    "outside\n",
		"outside/sock/.placehold": "",
	} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := exec.Command("git", "init", "-q", sb.proj)
	if out, err := git.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	return sb
}

// pol is extra policy text for each table.
type pol struct{ fs, net, proc, sandbox string }

// policy builds a policy from the default preset, the test mode and extra settings.
func (s *sandbox) policy(extra pol) *policy.Policy {
	s.t.Helper()
	text := fmt.Sprintf("version = 1\npresets = [\"default\"]\n[filesystem]\n%s\n[network]\n%s\n[process]\n%s\n[sandbox]\nmode = %q\n%s\n",
		extra.fs, extra.net, extra.proc, testMode(), extra.sandbox)
	p, err := policy.Parse("test.toml", []byte(text), policy.Env{Home: s.home, Cwd: s.proj})
	if err != nil {
		s.t.Fatalf("policy: %v\n%s", err, text)
	}
	return p
}

// writePolicy writes the policy text for runSupervise.
func (s *sandbox) writePolicy(extra pol) string {
	s.policy(extra) // validate
	text := fmt.Sprintf("version = 1\npresets = [\"default\"]\n[filesystem]\n%s\n[network]\n%s\n[process]\n%s\n[sandbox]\nmode = %q\n%s\n",
		extra.fs, extra.net, extra.proc, testMode(), extra.sandbox)
	p := filepath.Join(s.root, "policy.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// result is one run's outcome.
type result struct {
	res            *cordonrt.Result
	err            error
	stdout, stderr string
	diag           string
}

func (r result) code() int {
	if r.err != nil {
		switch {
		case errors.Is(r.err, cordonrt.ErrNotFound):
			return 127
		case errors.Is(r.err, cordonrt.ErrNotExecutable):
			return 126
		}
		return 125
	}
	return r.res.ExitCode
}

// run runs a command in the sandbox with stdin from /dev/null.
func (s *sandbox) run(p *policy.Policy, args ...string) result {
	s.t.Helper()
	return s.runWith(p, nil, nil, args...)
}

func (s *sandbox) runWith(p *policy.Policy, env []string, stdin *os.File, args ...string) result {
	s.t.Helper()
	dir := s.t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer stderr.Close()
	if stdin == nil {
		null, err := os.Open(os.DevNull)
		if err != nil {
			s.t.Fatal(err)
		}
		defer null.Close()
		stdin = null
	}
	if env == nil {
		env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.home, "LANG=C"}
	}
	var diag bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cordonrt.Run(ctx, cordonrt.Config{
		Policy: p, Args: args, Dir: s.proj, Env: env,
		Stdin: stdin, Stdout: stdout, Stderr: stderr, Diag: &diag,
	})
	out, _ := os.ReadFile(stdout.Name())
	errOut, _ := os.ReadFile(stderr.Name())
	return result{res: res, err: err, stdout: string(out), stderr: string(errOut), diag: diag.String()}
}

// attempt runs one escape attempt in the sandbox and returns its outcome.
func (s *sandbox) attempt(p *policy.Policy, name string, args ...string) outcome {
	s.t.Helper()
	r := s.run(p, append([]string{s.bin, attemptArg, name}, args...)...)
	if r.err != nil || r.code() != 0 {
		s.t.Fatalf("attempt %s: exit %d, err %v\nstdout: %s\nstderr: %s\ndiag: %s", name, r.code(), r.err, r.stdout, r.stderr, r.diag)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var o outcome
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &o); err != nil {
		s.t.Fatalf("attempt %s: bad output %q: %v", name, r.stdout, err)
	}
	return o
}

// wantErrno fails unless the attempt failed with the errno.
func wantErrno(t *testing.T, o outcome, want syscall.Errno) {
	t.Helper()
	if o.Errno != int(want) {
		t.Errorf("attempt %s; want it refused with %v (errno %d)", o, want, int(want))
	}
}

// wantOK fails unless the attempt succeeded.
func wantOK(t *testing.T, o outcome) {
	t.Helper()
	if o.Errno != 0 || o.Err != "" {
		t.Errorf("attempt %s; want success", o)
	}
}

// byMode picks the expectation of the test mode.
func byMode[T any](namespace, fallbackMode T) T {
	if fallback() {
		return fallbackMode
	}
	return namespace
}
