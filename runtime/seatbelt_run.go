//go:build darwin || linux

package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordonsh/cordon/fsjail"
	"github.com/cordonsh/cordon/netproxy"
	"github.com/cordonsh/cordon/policy"
	"github.com/cordonsh/cordon/runtime/internal/cmdpath"
)

// The supervisor's side of a macOS run. It builds on Linux too, where the tests run it with
// a stand-in for sandbox-exec (seatbelt_run_linux_test.go); run_darwin.go is the real entry.

// seatbeltRunner is one macOS run.
type seatbeltRunner struct {
	cfg     Config
	pol     *policy.Policy
	support Support
	log     *slog.Logger
	creds   *Credentials

	// sandboxExec is the program that applies the profile and executes the helper:
	// Support.SandboxExec.
	sandboxExec string
	// helper is cordon's own executable; empty means os.Executable.
	helper string
	// streamDenials starts reading the run's denials from the unified log; nil for none.
	streamDenials func(*denialLog, *slog.Logger) (stop func())
	// userProcesses counts the user's processes on the machine, for RLIMIT_NPROC; nil
	// for none.
	userProcesses func() int

	tmpdir  string
	term    *terminal
	proxy   *netproxy.Proxy
	cleanup []func()
}

func (r *seatbeltRunner) run(ctx context.Context, pl Plan) (*Result, error) {
	defer func() {
		for i := len(r.cleanup) - 1; i >= 0; i-- {
			r.cleanup[i]()
		}
	}()
	defer func() {
		// The user's terminal comes back on every way out, a panic included.
		if r.term != nil {
			r.term.restore()
		}
	}()
	if len(pl.NotEnforced) > 0 {
		fmt.Fprintf(r.cfg.Diag, "cordon: best effort: not enforced on this machine:\n  - %s\n", strings.Join(pl.NotEnforced, "\n  - "))
	}

	stdin, stdout, stderr := r.cfg.Stdin, r.cfg.Stdout, r.cfg.Stderr
	if isTerminal(r.cfg.Stdin) && isTerminal(r.cfg.Stdout) {
		t, err := openTerminal(r.cfg.Stdin, r.cfg.Stdout)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSetup, err)
		}
		r.term = t
		r.cleanup = append(r.cleanup, func() { t.slave.Close(); t.master.Close() })
		stdin, stdout = t.slave, t.slave
		if isTerminal(stderr) {
			stderr = t.slave
		}
	}

	// The private temp dir, with the canary the helper must not be able to read.
	tmp, err := os.MkdirTemp("", "cordon-")
	if err != nil {
		return nil, fmt.Errorf("%w: private temp dir: %v", ErrSetup, err)
	}
	r.tmpdir = tmp
	r.cleanup = append(r.cleanup, func() { _ = os.RemoveAll(tmp) })
	canary := filepath.Join(tmp, ".cordon-canary")
	if err := os.WriteFile(canary, []byte("cordon\n"), 0o600); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}

	// The run's tag, and the stream of its denials, started early so that it sees the first.
	tag := "cordon-" + newToken()[:16]
	resolvedCanary := fsjail.ResolvePath(canary)
	denials := newDenialLog(tag, func(d denial) bool {
		return noisyDenial(d) || d.Target == resolvedCanary || d.Target == canary
	})
	stopDenials := func() {}
	if r.streamDenials != nil {
		stopDenials = r.streamDenials(denials, r.log)
	}

	// The proxy, on the machine's loopback: the profile lets the command connect to its
	// port, the token keeps other local programs from using it.
	pcfg := proxyConfig(r.pol, r.log)
	r.creds.ProxyConfig(&pcfg, true)
	audit, err := OpenAuditLog(r.pol)
	if err != nil {
		stopDenials()
		return nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	if audit != nil {
		pcfg.Audit = audit
		r.cleanup = append(r.cleanup, func() { audit.Close() })
	}
	proxy, err := netproxy.New(pcfg)
	if err != nil {
		stopDenials()
		return nil, fmt.Errorf("%w: proxy: %v", ErrSetup, err)
	}
	r.proxy = proxy
	r.cleanup = append(r.cleanup, func() {
		proxy.Close()
		WriteBlockedSummary(r.cfg.Diag, proxy.Summary())
	})
	hints := r.denialHints()
	r.cleanup = append(r.cleanup, func() {
		stopDenials()
		ds, total := denials.denials()
		writeDenialSummary(r.cfg.Diag, ds, total, hints.hint)
	})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%w: proxy listener: %v", ErrSetup, err)
	}
	go proxy.Serve(ln)
	port := ln.Addr().(*net.TCPAddr).Port
	ports := []uint16{uint16(port)}
	routeAddrs := map[string]string{}
	for _, name := range r.creds.Routes() {
		rl, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("%w: listener of upstream %q: %v", ErrSetup, name, err)
		}
		routeAddrs[name] = rl.Addr().String()
		ports = append(ports, uint16(rl.Addr().(*net.TCPAddr).Port))
		go func() { _ = proxy.ServeRoute(name, rl) }()
	}

	// The command's environment: as on Linux.
	proxyURL := proxy.URL("127.0.0.1:" + strconv.Itoa(port))
	socksURL := "socks5h://" + strings.TrimPrefix(proxyURL, "http://")
	env, removed := commandEnv(r.cfg.Env, r.pol.Process, proxyURL, socksURL, tmp, policy.ModeSeatbelt)
	if len(removed) > 0 {
		r.log.Debug("environment variables removed by the policy", "names", removed)
	}
	var ca *CABundle
	if pem := proxy.CACertPEM(); pem != nil {
		if ca, err = WriteCABundle(tmp, pem, r.cfg.Env); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSetup, err)
		}
	}
	env = r.creds.CommandEnv(env, routeAddrs, ca)

	// The profile.
	helper := r.helper
	if helper == "" {
		if helper, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("%w: cordon's own executable: %v", ErrSetup, err)
		}
	}
	if helper, err = filepath.EvalSymlinks(helper); err != nil {
		return nil, fmt.Errorf("%w: cordon's own executable: %v", ErrSetup, err)
	}
	in := seatbeltInputs{
		Policy:     r.pol,
		Dir:        r.cfg.Dir,
		TmpDir:     tmp,
		Canary:     canary,
		Helper:     helper,
		ProxyPorts: ports,
		DenyRead:   r.creds.DenyRead(),
		DenyWrite:  r.creds.DenyWrite(),
		Tag:        tag,
	}
	if r.term != nil {
		in.Terminal = r.term.path
	}
	profile, err := seatbeltProfile(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	r.log.Debug("sandbox profile", "tag", tag, "bytes", len(profile))
	watched := missingPaths(seatbeltDenyWrite(in))
	r.cleanup = append(r.cleanup, func() {
		if created := existingPaths(watched); len(created) > 0 {
			fmt.Fprintf(r.cfg.Diag, "cordon: warning: the command created write-protected paths (git hooks and config, editor and agent settings can run code outside the sandbox); review them before you use them:\n  - %s\n", strings.Join(created, "\n  - "))
		}
	})

	hc := &helperConfig{
		Args:    r.cfg.Args,
		Env:     env,
		Dir:     r.cfg.Dir,
		Canary:  canary,
		NProc:   r.processLimit(),
		Setctty: r.term != nil,
	}
	h, err := r.startHelper(helper, profile, stdin, stdout, stderr)
	if err != nil {
		return nil, err
	}
	return r.serve(ctx, h, hc)
}

// denialHints says which part of the policy a denial comes from.
func (r *seatbeltRunner) denialHints() *denialHints {
	fs := r.pol.Filesystem
	return newDenialHints(denialHintInput{
		DenyRead:  append(slices.Clone(fs.DenyRead), r.creds.DenyRead()...),
		DenyWrite: append(slices.Clone(fs.DenyWrite), r.creds.DenyWrite()...),
		Builtin:   append(slices.Clone(fs.BuiltinDenyWrite), gitFileDenies(r.cfg.Dir)...),
		Resolve:   fsjail.ResolvePath,
	})
}

// seatbeltHelperSlack is the headroom the process limit leaves for the helper's threads.
const seatbeltHelperSlack = 16

// processLimit returns the RLIMIT_NPROC for the command, 0 for none. On macOS it counts
// every process of the user on the machine, so the user's current processes are added.
func (r *seatbeltRunner) processLimit() uint64 {
	max := r.pol.Process.MaxProcesses
	if max <= 0 || r.support.ProcessLimit == "" || r.userProcesses == nil {
		return 0
	}
	return uint64(max + seatbeltHelperSlack + r.userProcesses())
}

// seatbeltHelper is the started sandbox-exec, which becomes the helper.
type seatbeltHelper struct {
	cmd    *exec.Cmd
	cfgW   *os.File // closing it ends the run
	status *os.File
	waited chan error
	sigc   chan os.Signal
}

// startHelper starts sandbox-exec with the profile and the helper. Until serve takes over,
// any way out of the run kills and reaps it.
func (r *seatbeltRunner) startHelper(helper, profile string, stdin, stdout, stderr *os.File) (*seatbeltHelper, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: config pipe: %v", ErrSetup, err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return nil, fmt.Errorf("%w: status pipe: %v", ErrSetup, err)
	}
	cmd := &exec.Cmd{
		// The helper's path is absolute, so sandbox-exec does not search PATH for it.
		Path: r.sandboxExec,
		Args: []string{"sandbox-exec", "-p", profile, helper, helperArg},
		// The helper allocates little: no garbage collector. Two Ps, as on Linux: a
		// goroutine blocked in a system call keeps its P until sysmon takes it back.
		Env:         []string{helperEnv, "GOGC=off", "GOMAXPROCS=2"},
		Stdin:       stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		ExtraFiles:  []*os.File{cfgR, statusW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	// Signals are caught before the helper exists and passed on to it: a ^C during setup
	// reaches the command rather than ending cordon alone.
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, forwarded...)
	r.cleanup = append(r.cleanup, func() { signal.Stop(sigc) })
	err = cmd.Start()
	cfgR.Close()
	statusW.Close()
	if err != nil {
		cfgW.Close()
		statusR.Close()
		return nil, fmt.Errorf("%w: start sandbox-exec: %v", ErrSetup, err)
	}
	h := &seatbeltHelper{cmd: cmd, cfgW: cfgW, status: statusR, waited: make(chan error, 1), sigc: sigc}
	go func() { h.waited <- cmd.Wait() }()
	r.cleanup = append(r.cleanup, func() {
		statusR.Close()
		if h.cfgW != nil {
			// Never configured: it is waiting, and must not outlive the run.
			h.cfgW.Close()
			_ = cmd.Process.Kill()
			<-h.waited
		}
	})
	return h, nil
}

// serve hands the helper its configuration, serves until the command is done, and returns
// its status.
func (r *seatbeltRunner) serve(ctx context.Context, h *seatbeltHelper, hc *helperConfig) (*Result, error) {
	cmd, waited, sigc := h.cmd, h.waited, h.sigc
	if r.term != nil {
		r.term.slave.Close()
	}
	if err := json.NewEncoder(h.cfgW).Encode(hc); err != nil {
		// Most likely sandbox-exec refused the profile and is gone already.
		_ = cmd.Process.Kill()
		h.cfgW.Close()
		h.cfgW = nil
		waitErr := <-waited
		if r.term != nil {
			drainTerminal(r.term, r.cfg.Diag)
			r.term.finish()
		}
		return nil, fmt.Errorf("%w: %s (sending it the configuration: %v)", ErrSetup, sandboxExecEnded(waitErr), err)
	}
	cfgW := h.cfgW
	h.cfgW = nil
	endRun := func() {
		if cfgW != nil {
			cfgW.Close()
			cfgW = nil
		}
	}
	defer endRun()

	msgs := make(chan helperMsg, 8)
	go func() {
		defer close(msgs)
		sc := bufio.NewScanner(h.status)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			var m helperMsg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				msgs <- m
			}
		}
	}()

	var (
		started     *helperMsg
		exit        *helperMsg
		failure     *helperMsg
		interrupted bool
		ctxDone     = ctx.Done()
		waitErr     error
		helperDone  bool
		relay       = signalRelay{term: r.term, diag: r.cfg.Diag}
	)
	for exit == nil && (!helperDone || msgs != nil) {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			switch m.Type {
			case msgStarted:
				started = &m
				if !m.Confined {
					r.log.Debug("the helper could signal outside the sandbox; leftovers are killed by process group only")
				}
				if r.term != nil {
					if err := r.term.start(); err != nil {
						fmt.Fprintf(r.cfg.Diag, "cordon: terminal: %v\n", err)
					}
				}
			case msgExit:
				exit = &m
			case msgError, msgExec:
				failure = &m
			}
		case s := <-sigc:
			relay.handle(s, func(s os.Signal) { _ = cmd.Process.Signal(s) }, endRun)
		case <-ctxDone:
			ctxDone = nil
			interrupted = true
			endRun()
			if started == nil {
				_ = cmd.Process.Kill()
			}
		case waitErr = <-waited:
			helperDone = true
		}
	}
	if !helperDone {
		go func() { <-waited }()
	}
	if r.term != nil && started == nil {
		// sandbox-exec's own complaint (a profile it refused) went to the pty, whose relay
		// starts only with the command.
		drainTerminal(r.term, r.cfg.Diag)
	}
	if r.term != nil {
		r.term.finish()
	}

	switch {
	case failure != nil && failure.Type == msgExec:
		if failure.Step == cmdpath.OpLookup && (failure.Errno == int(unix.ENOENT) || failure.Errno == int(unix.ENOTDIR)) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, r.cfg.Args[0])
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrNotExecutable, r.cfg.Args[0], strings.TrimPrefix(failure.Err, "look up "+r.cfg.Args[0]+": "))
	case failure != nil:
		return nil, fmt.Errorf("%w: %s: %s", ErrSetup, failure.Step, failure.Err)
	case exit != nil:
		res := &Result{ExitCode: exit.Code, Signal: exit.Signal, Mode: policy.ModeSeatbelt}
		if r.pol.Sandbox.BestEffort {
			res.NotEnforced = explainSeatbelt(r.pol, r.support).NotEnforced
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("command killed: %w", ctx.Err())
		}
		return res, nil
	case started != nil:
		// The helper died (it shares the sandbox, so the command can kill it): kill the
		// command's process group, which is all cordon can still reach.
		_ = unix.Kill(-started.Pid, unix.SIGKILL)
		return nil, fmt.Errorf("%w: cordon's helper ended before the command's exit status was known (%v); the command's process group was killed", ErrSetup, waitErr)
	case interrupted && ctx.Err() != nil:
		return nil, fmt.Errorf("%w: %v", ErrSetup, ctx.Err())
	case interrupted:
		return nil, fmt.Errorf("%w: interrupted", ErrSetup)
	}
	return nil, fmt.Errorf("%w: %s", ErrSetup, sandboxExecEnded(waitErr))
}

// sandboxExecEnded says that sandbox-exec ended before the helper reported.
func sandboxExecEnded(waitErr error) string {
	return fmt.Sprintf("sandbox-exec ended before cordon's helper started (%v): it refused the profile or cannot sandbox here (its message, if any, is above; see 'cordon doctor')", waitErr)
}

// drainTerminal copies what is waiting on the pty to w, without waiting for more.
func drainTerminal(t *terminal, w io.Writer) {
	_ = t.master.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 16<<10)
	if n, _ := t.master.Read(buf); n > 0 {
		_, _ = w.Write(buf[:n])
	}
}
