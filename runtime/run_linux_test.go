package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cordonsh/cordon/policy"
	cordonrt "github.com/cordonsh/cordon/runtime"
)

func TestExitStatus(t *testing.T) {
	s := newSandbox(t)
	p := s.policy(pol{})
	notExec := filepath.Join(s.proj, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badInterp := filepath.Join(s.proj, "bad-interpreter")
	if err := os.WriteFile(badInterp, []byte("#!/nonexistent/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		signal int
		err    error
	}{
		{"success", []string{"true"}, 0, 0, nil},
		{"own status", []string{"sh", "-c", "exit 3"}, 3, 0, nil},
		{"killed by a signal", []string{"sh", "-c", "kill -9 $$"}, 137, 9, nil},
		{"terminated", []string{"sh", "-c", "kill -TERM $$"}, 143, 15, nil},
		{"not found", []string{"no-such-command-cordon"}, 127, 0, cordonrt.ErrNotFound},
		{"not found by path", []string{"./no-such-file"}, 127, 0, cordonrt.ErrNotFound},
		{"not executable", []string{notExec}, 126, 0, cordonrt.ErrNotExecutable},
		{"a directory", []string{s.proj}, 126, 0, cordonrt.ErrNotExecutable},
		{"bad interpreter", []string{badInterp}, 126, 0, cordonrt.ErrNotExecutable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.run(p, tt.args...)
			if r.code() != tt.code {
				t.Fatalf("exit %d, want %d (err %v, stderr %q)", r.code(), tt.code, r.err, r.stderr)
			}
			if tt.err != nil && !errors.Is(r.err, tt.err) {
				t.Errorf("err %v, want %v", r.err, tt.err)
			}
			if tt.err == nil && r.res.Signal != tt.signal {
				t.Errorf("signal %d, want %d", r.res.Signal, tt.signal)
			}
		})
	}
	t.Run("missing working directory", func(t *testing.T) {
		r := s.runIn(p, filepath.Join(s.proj, "gone"), "true")
		if r.code() != 125 || !errors.Is(r.err, cordonrt.ErrSetup) {
			t.Errorf("exit %d, err %v; want 125 and ErrSetup", r.code(), r.err)
		}
	})
}

func TestContextCancel(t *testing.T) {
	s := newSandbox(t)
	p := s.policy(pol{})
	marker := fmt.Sprintf("%d.%d", 3000+time.Now().Nanosecond()%1000, os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	t0 := time.Now()
	res, err := cordonrt.Run(ctx, cordonrt.Config{Policy: p, Args: []string{"sh", "-c", "sleep " + marker + " & sleep " + marker},
		Dir: s.proj, Env: []string{"PATH=" + os.Getenv("PATH")}, Stdin: null, Stdout: null, Stderr: null, Diag: io.Discard})
	if !errors.Is(err, context.DeadlineExceeded) || res == nil || res.ExitCode != 137 {
		t.Fatalf("res %+v, err %v; want exit 137 and the context's error", res, err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	if left := processesWith(marker); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}

// TestSignals checks that signals reach the command, and that a command ignoring them is
// killed on the third.
func TestSignals(t *testing.T) {
	s := newSandbox(t)
	policyFile := s.writePolicy(pol{})
	for _, tt := range []struct {
		name   string
		script string
		sends  int
		code   int
	}{
		{"forwarded", "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done", 1, 7},
		{"ignored three times", "trap '' TERM; echo ready; while :; do sleep 0.05; done", 3, 137},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(s.bin, superviseArg, policyFile, s.home, s.proj, "--", "sh", "-c", tt.script)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			buf := make([]byte, 6)
			if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
				t.Fatalf("read %q, %v", buf, err)
			}
			for i := 0; i < tt.sends; i++ {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				time.Sleep(50 * time.Millisecond)
			}
			rest, _ := io.ReadAll(out)
			err = cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if code != tt.code {
				t.Errorf("exit %d (%v), want %d; output %q, stderr %q", code, err, tt.code, rest, stderr.String())
			}
		})
	}
}

func (s *sandbox) runIn(p *policy.Policy, dir string, args ...string) result {
	saved := s.proj
	s.proj = dir
	defer func() { s.proj = saved }()
	return s.run(p, args...)
}

func TestEnvironment(t *testing.T) {
	s := newSandbox(t)
	p := s.policy(pol{proc: `env_deny = ["MY_PRIVATE"]`})
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.home, "ANTHROPIC_API_KEY=sk-secret",
		"GITHUB_TOKEN=ghp_secret", "MY_PRIVATE=x", "KEEP_ME=1", "http_proxy=http://evil:1", "TMPDIR=/somewhere"}
	r := s.runWith(p, env, nil, "sh", "-c", "env; touch \"$TMPDIR/x\" && echo TMPDIR-WRITABLE")
	if r.code() != 0 {
		t.Fatalf("exit %d %v: %s", r.code(), r.err, r.stderr)
	}
	got := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
		}
	}
	for _, k := range []string{"ANTHROPIC_API_KEY", "GITHUB_TOKEN", "MY_PRIVATE"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s reached the command", k)
		}
	}
	if strings.Contains(r.stdout, "secret") {
		t.Errorf("a secret reached the command")
	}
	if got["KEEP_ME"] != "1" {
		t.Errorf("KEEP_ME lost")
	}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		// Namespace mode: no credentials (only the sandbox reaches the listener); fallback
		// mode: the per-run token.
		want := byMode("http://127.0.0.1:3128", "http://cordon:")
		if !strings.HasPrefix(got[k], want) {
			t.Errorf("%s = %q, want it to start with %q", k, got[k], want)
		}
	}
	for _, k := range []string{"ALL_PROXY", "all_proxy"} {
		if !strings.HasPrefix(got[k], "socks5h://") {
			t.Errorf("%s = %q", k, got[k])
		}
	}
	if got["NO_PROXY"] != "localhost,127.0.0.1,::1" || got["no_proxy"] != got["NO_PROXY"] {
		t.Errorf("NO_PROXY = %q, no_proxy = %q", got["NO_PROXY"], got["no_proxy"])
	}
	if got["CORDON_SANDBOX"] != string(testMode()) {
		t.Errorf("CORDON_SANDBOX = %q", got["CORDON_SANDBOX"])
	}
	tmp := got["TMPDIR"]
	if !strings.Contains(r.stdout, "TMPDIR-WRITABLE") || tmp == "/somewhere" || tmp == "" {
		t.Errorf("TMPDIR %q not private and writable", tmp)
	}
	if _, err := os.Stat(tmp); err == nil {
		t.Errorf("the private TMPDIR %s is left after the run", tmp)
	}
}

func TestPrograms(t *testing.T) {
	s := newSandbox(t)
	p := s.policy(pol{})
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"python3", []string{"python3", "-c", "import os,sys; print('py', sum(range(10)))"}, "py 45"},
		{"node", []string{"node", "-e", "console.log('node', [1,2,3].length)"}, "node 3"},
		{"shell pipeline", []string{"sh", "-c", "seq 1 100 | sort -n | tail -1"}, "100"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec.LookPath(tt.args[0]); err != nil {
				need(t, false, tt.args[0]+" is not installed")
			}
			r := s.run(p, tt.args...)
			if r.code() != 0 || !strings.Contains(r.stdout, tt.want) {
				t.Errorf("exit %d %v: stdout %q stderr %q", r.code(), r.err, r.stdout, r.stderr)
			}
		})
	}
	t.Run("git", func(t *testing.T) {
		git := "git -c user.name=t -c user.email=t@example.com "
		script := "set -e; " + git + "status --short; " + git + "add main.go; " + git + "commit -q -m first; " + git + "log --oneline | wc -l"
		if fallback() {
			// Documented: in fallback mode .git accepts no new files (it holds write-denied
			// paths), so git can read but not commit.
			script = "set -e; git status --short >/dev/null; git log --oneline 2>/dev/null | wc -l; echo 1"
		}
		r := s.run(p, "sh", "-c", script)
		if r.code() != 0 || !strings.Contains(r.stdout, "1") {
			t.Errorf("exit %d %v: stdout %q stderr %q", r.code(), r.err, r.stdout, r.stderr)
		}
	})
}

// TestProxy sends requests through the proxy with curl: to a server on the host's loopback
// that the policy allows, and directly (which must fail).
func TestProxy(t *testing.T) {
	s := newSandbox(t)
	if _, err := exec.LookPath("curl"); err != nil {
		need(t, false, "curl is not installed")
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the host")
	})}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/"
	resp, err := http.Get(url)
	outsideCan(t, "fetching "+url, err)
	resp.Body.Close()

	p := s.policy(pol{net: `allow = ["127.0.0.1"]` + "\nallow_private = [\"127.0.0.0/8\"]"})
	t.Run("through the proxy", func(t *testing.T) {
		r := s.run(p, "sh", "-c", `curl -sS --max-time 10 -x "$HTTP_PROXY" --noproxy '' -w '\n%{http_code}\n' `+url)
		if r.code() != 0 {
			t.Fatalf("curl: exit %d %v: %s %s", r.code(), r.err, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "hello from the host\n200") {
			t.Errorf("curl through the proxy: %q", r.stdout)
		}
	})
	t.Run("refused by the proxy", func(t *testing.T) {
		// The same server, but the policy does not allow private addresses.
		strict := s.policy(pol{net: `allow = ["127.0.0.1"]`})
		r := s.run(strict, "sh", "-c", `curl -sS --max-time 10 -x "$HTTP_PROXY" --noproxy '' -o /dev/null -w '%{http_code}\n' `+url)
		if !strings.Contains(r.stdout, "403") {
			t.Errorf("curl: %q %q, want the proxy's 403", r.stdout, r.stderr)
		}
		if !strings.Contains(r.diag, "the proxy blocked 1 request") {
			t.Errorf("no summary of blocked requests on Diag: %q", r.diag)
		}
	})
	t.Run("directly", func(t *testing.T) {
		r := s.run(p, "curl", "-sS", "--max-time", "5", "--noproxy", "*", url)
		if r.code() == 0 || strings.Contains(r.stdout, "hello") {
			t.Errorf("curl reached the host directly: %q", r.stdout)
		}
	})
}

// TestInteractive runs an interactive program under cordon in tmux: it sees a terminal of
// the right size, gets keys, gets window-size changes, and the terminal is restored after.
func TestInteractive(t *testing.T) {
	s := newSandbox(t)
	for _, tool := range []string{"tmux", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(t, false, tool+" is not installed")
		}
	}
	policyFile := s.writePolicy(pol{})
	prog := filepath.Join(s.root, "interactive.py")
	if err := os.WriteFile(prog, []byte(`import os, signal, sys
def winch(*_):
    print("WINCH", os.get_terminal_size().columns, flush=True)
signal.signal(signal.SIGWINCH, winch)
sz = os.get_terminal_size()
print("READY", os.isatty(0), os.isatty(1), sz.columns, sz.lines, os.getsid(0) == os.getpid(), flush=True)
line = sys.stdin.readline()
print("GOT", line.strip(), flush=True)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(s.root, "tmux.sock")
	script := fmt.Sprintf("%s %s %s %s %s -- python3 %s; echo EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -- '-*icanon'; sleep 60",
		s.bin, superviseArg, policyFile, s.home, s.proj, prog)
	tmux := func(args ...string) string {
		t.Helper()
		// No user configuration, and a shell that exists whatever the user's login shell.
		cmd := exec.Command("tmux", append([]string{"-S", sock, "-f", os.DevNull}, args...)...)
		cmd.Env = append(os.Environ(), "SHELL=/bin/sh")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-x", "100", "-y", "30", script)
	defer exec.Command("tmux", "-S", sock, "kill-server").Run()
	waitFor := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			screen := tmux("capture-pane", "-p")
			if strings.Contains(screen, want) {
				return screen
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %q; screen:\n%s", want, screen)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("READY True True 100 30 True")
	tmux("resize-window", "-x", "120", "-y", "30")
	waitFor("WINCH 120")
	tmux("send-keys", "hello cordon", "Enter")
	waitFor("GOT hello cordon")
	waitFor("EXIT=0")
	screen := waitFor("icanon")
	if !strings.Contains(screen, "\nicanon") {
		t.Errorf("the terminal was not restored (icanon off after the run):\n%s", screen)
	}
}
