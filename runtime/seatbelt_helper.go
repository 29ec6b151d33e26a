//go:build darwin || linux

package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cordonsh/cordon/runtime/internal/cmdpath"
)

// The helper of a macOS run is cordon itself, started by sandbox-exec inside the run's
// sandbox as `cordon cordon-seatbelt-helper` with CORDON_HELPER=seatbelt in its
// environment. It proves that the profile is in force, starts the command, passes signals
// on, and when the command exits kills what it left behind in the sandbox and reports the
// exit status. Starting the command from inside (rather than letting sandbox-exec exec it)
// is what lets cordon tell "not found" (127) and "not executable" (126) from the command's
// own statuses, as the sandbox sees the command.

// helperArg (argv[1]) and helperEnv (in the environment) make a process the helper.
const (
	helperArg = "cordon-seatbelt-helper"
	helperEnv = "CORDON_HELPER=seatbelt"
)

// The helper's descriptors besides stdio.
const (
	// fdHelperConfig is a pipe from the supervisor: the helperConfig as JSON, then nothing
	// until the supervisor closes it, which ends the run (or the supervisor died).
	fdHelperConfig = 3
	// fdHelperStatus is a pipe to the supervisor: one helperMsg per line.
	fdHelperStatus = 4
)

// helperConfig is everything the helper needs; the supervisor decides it all.
type helperConfig struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	// Canary is a file the profile denies reading.
	Canary string `json:"canary"`
	// NProc is the RLIMIT_NPROC for the command, 0 for none.
	NProc uint64 `json:"nproc"`
	// Setctty makes stdin the command's controlling terminal (it is a fresh pty).
	Setctty bool `json:"setctty"`
}

// helperMsg is one report from the helper.
type helperMsg struct {
	Type   string `json:"t"` // msgError, msgExec, msgStarted, msgExit
	Step   string `json:"step,omitempty"`
	Err    string `json:"err,omitempty"`
	Errno  int    `json:"errno,omitempty"`
	Pid    int    `json:"pid,omitempty"`
	Code   int    `json:"code,omitempty"`
	Signal int    `json:"sig,omitempty"`
	// Confined says that signals out of the sandbox were refused, so that the helper could
	// kill every process the command left in it (else only its process group).
	Confined bool `json:"confined,omitempty"`
}

// stepSandbox is the setup step that proves the profile is in force.
const stepSandbox = "checking that the sandbox profile is in force"

// skipCanary is set only by this package's tests, which run the helper under a stand-in for
// sandbox-exec on Linux, where no Seatbelt profile can deny the canary.
var skipCanary bool

// helperMain is the helper. Every failure before the command starts is reported with its
// step, and the command is then never started.
func seatbeltHelperMain() int {
	// Both pipes are served by the runtime's poller, so that no goroutine blocked in a
	// read holds a P.
	_ = unix.SetNonblock(fdHelperStatus, true)
	_ = unix.SetNonblock(fdHelperConfig, true)
	status := os.NewFile(fdHelperStatus, "status")
	send := func(m helperMsg) {
		b, _ := json.Marshal(m)
		_, _ = status.Write(append(b, '\n'))
	}
	fail := func(step string, err error) int {
		send(helperMsg{Type: msgError, Step: step, Err: err.Error(), Errno: errnoOf(err)})
		return 125
	}

	// Signals are caught from the start: those that arrive during setup are passed to the
	// command once it runs.
	sigc := make(chan os.Signal, 64)
	signal.Notify(sigc, append([]os.Signal{unix.SIGCHLD}, forwarded...)...)

	// 1. Descriptors that cordon's own parent leaked stop here: the command gets stdio and
	//    nothing else.
	markCloseOnExec(fdHelperConfig)

	// 2. The configuration, in full; then the pipe stays open until the run ends.
	cfgFile := os.NewFile(fdHelperConfig, "config")
	dec := json.NewDecoder(bufio.NewReader(cfgFile))
	var cfg helperConfig
	if err := dec.Decode(&cfg); err != nil {
		return fail(stepConfig, err)
	}
	if len(cfg.Args) == 0 {
		return fail(stepConfig, errors.New("no command"))
	}
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, cfgFile)
		close(gone)
	}()

	// 3. The profile is in force: the canary, which it denies, cannot be read. A helper
	//    that could read it would run the command unconfined.
	if !skipCanary {
		if err := checkCanary(cfg.Canary); err != nil {
			return fail(stepSandbox, err)
		}
	}
	// Nor can the helper signal its parent, cordon, which is outside the sandbox. Only
	// then does it kill every process it may signal (kill(-1)) when the command ends:
	// those are exactly the processes of this sandbox.
	confined := errors.Is(unix.Kill(os.Getppid(), 0), unix.EPERM)

	// 4. The process limit, within the hard limit.
	if cfg.NProc > 0 {
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
			return fail(stepRlimit, err)
		}
		n := min(cfg.NProc, lim.Max)
		if err := unix.Setrlimit(unix.RLIMIT_NPROC, &unix.Rlimit{Cur: n, Max: lim.Max}); err != nil {
			return fail(stepRlimit, err)
		}
	}

	// 5. Find the command as the sandbox sees it and start it in a new session, with its
	//    pty as controlling terminal.
	if fi, err := os.Stat(cfg.Dir); err != nil {
		return fail(stepDir, err)
	} else if !fi.IsDir() {
		return fail(stepDir, &os.PathError{Op: "chdir", Path: cfg.Dir, Err: unix.ENOTDIR})
	}
	path, err := cmdpath.LookPath(cfg.Args[0], cfg.Dir, cmdpath.EnvValue(cfg.Env, "PATH"))
	if err == nil {
		var pid int
		pid, err = syscall.ForkExec(path, cfg.Args, &syscall.ProcAttr{
			Dir:   cfg.Dir,
			Env:   cfg.Env,
			Files: []uintptr{0, 1, 2},
			Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: cfg.Setctty, Ctty: 0},
		})
		if err != nil {
			err = &os.PathError{Op: "exec", Path: cfg.Args[0], Err: err}
		} else {
			send(helperMsg{Type: msgStarted, Pid: pid, Confined: confined})
			// The helper's own copies of stdio would keep a pipe or the terminal open
			// after the command's processes are gone.
			if null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
				for fd := 0; fd <= 2; fd++ {
					_ = unix.Dup2(null, fd)
				}
				unix.Close(null)
			}
			code, sig := reapCommand(pid, confined, sigc, gone)
			send(helperMsg{Type: msgExit, Code: code, Signal: sig})
			return code
		}
	}
	var pe *os.PathError
	op := ""
	if errors.As(err, &pe) {
		op = pe.Op
	}
	send(helperMsg{Type: msgExec, Step: op, Err: err.Error(), Errno: errnoOf(err)})
	return 126
}

// checkCanary returns nil if reading the canary is refused by the sandbox (EPERM).
func checkCanary(path string) error {
	f, err := os.Open(path)
	switch {
	case err == nil:
		f.Close()
		return fmt.Errorf("%s, which the profile denies, can be read", path)
	case errors.Is(err, unix.EPERM):
		return nil
	}
	return fmt.Errorf("reading %s, which the profile denies: %w", path, err)
}

// reapCommand waits for the command, passing signals on, then kills what it left behind
// and returns its exit status. The supervisor closing the configuration pipe ends the run.
func reapCommand(pid int, confined bool, sigc <-chan os.Signal, gone <-chan struct{}) (code, sig int) {
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			killLeftovers(pid, confined)
			return 125, 0
		}
		if wpid == pid && (ws.Exited() || ws.Signaled()) {
			killLeftovers(pid, confined)
			if ws.Signaled() {
				return 128 + int(ws.Signal()), int(ws.Signal())
			}
			return ws.ExitStatus(), 0
		}
		select {
		case s := <-sigc:
			switch s {
			case unix.SIGCHLD:
			case unix.SIGINT, unix.SIGQUIT:
				_ = unix.Kill(-pid, s.(unix.Signal))
			default:
				_ = unix.Kill(pid, s.(unix.Signal))
			}
		case <-gone:
			// The supervisor ended the run or died: end it here too.
			gone = nil
			killLeftovers(pid, confined)
		}
	}
}

// killLeftovers kills the command's process group and, if signals out of the sandbox are
// refused, every process the helper may signal: every process of this sandbox but itself.
func killLeftovers(pid int, confined bool) {
	_ = unix.Kill(-pid, unix.SIGKILL)
	_ = unix.Kill(pid, unix.SIGKILL)
	if confined {
		_ = unix.Kill(-1, unix.SIGKILL)
	}
}

// markCloseOnExec marks every open descriptor from fd up close-on-exec.
func markCloseOnExec(fd int) {
	entries, err := os.ReadDir("/dev/fd")
	if err != nil {
		var lim unix.Rlimit
		n := 4096
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < uint64(n) {
			n = int(lim.Cur)
		}
		for i := fd; i < n; i++ {
			unix.CloseOnExec(i)
		}
		return
	}
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n >= fd {
			unix.CloseOnExec(n)
		}
	}
}
