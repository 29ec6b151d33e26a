package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cordonsh/cordon/fsjail"
	"github.com/cordonsh/cordon/netjail"
	"github.com/cordonsh/cordon/netproxy"
	"github.com/cordonsh/cordon/policy"
	"github.com/cordonsh/cordon/runtime/internal/cmdpath"
	"github.com/cordonsh/cordon/runtime/internal/seccomp"
)

// helperSlack is the headroom the process limit leaves for the helper's own threads, which
// count against RLIMIT_NPROC and the pids cgroup like the command's.
const helperSlack = 16

// refusedError says that namespaces were refused; Run may then fall back.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return e.reason }

func run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}

	creds, err := runCredentials(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer creds.Close(context.Background())

	support := currentSupport()
	pl := explain(cfg.Policy, support, true, "")
	for {
		if pl.Refused != "" {
			return nil, fmt.Errorf("%w: %s", ErrNamespacesRefused, pl.Refused)
		}
		if len(pl.NotEnforced) > 0 && !cfg.Policy.Sandbox.BestEffort {
			return nil, fmt.Errorf("%w on this machine (%s mode), and the policy does not set sandbox.best_effort:\n  - %s",
				ErrUnenforceable, pl.Mode, strings.Join(pl.NotEnforced, "\n  - "))
		}
		r := &runner{cfg: cfg, pol: cfg.Policy, mode: pl.Mode, support: support, log: cfg.Logger, creds: creds}
		res, err := r.run(ctx, pl)
		var refused *refusedError
		if errors.As(err, &refused) && pl.Mode == policy.ModeNamespace {
			cfg.Logger.Debug("user namespaces refused", "reason", refused.reason)
			pl = explain(cfg.Policy, support, false, refused.reason)
			continue
		}
		return res, err
	}
}

// runner is one attempt at a run in one mode.
type runner struct {
	cfg     Config
	pol     *policy.Policy
	mode    policy.Mode
	support Support
	log     *slog.Logger

	tmpdir  string
	plan    *fsjail.Plan
	proxy   *netproxy.Proxy
	ln      net.Listener
	term    *terminal
	cgroup  *pidsCgroup
	cleanup []func()

	creds      *Credentials // secrets, credential rules, upstream routes, plugins
	routePorts []uint16     // fallback mode: the routes' listeners on the host's loopback
}

func (r *runner) namespace() bool { return r.mode == policy.ModeNamespace }

func (r *runner) run(ctx context.Context, pl Plan) (res *Result, err error) {
	defer func() {
		// The cleanups do not depend on one another, and some wait on the kernel (removing
		// placeholders still mounted in the helper's namespace, stopping signal delivery,
		// a cgroup): they run at once, which saves milliseconds at the end of every run.
		var wg sync.WaitGroup
		for _, f := range r.cleanup {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f()
			}()
		}
		wg.Wait()
	}()
	defer func() {
		// The user's terminal comes back on every way out, a panic included.
		if r.term != nil {
			r.term.restore()
		}
	}()

	if !r.namespace() {
		// Without namespaces the command sees cordon's process. Landlock already keeps it
		// from tracing cordon or reading its memory and environment (where secrets are); a
		// non-dumpable process is out of reach even where Landlock is missing.
		_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	}
	// The helper is started first: its start (a Go runtime, the binary's initialization)
	// is the longest step of a short run, and it overlaps with the planning below, which the
	// helper waits for.
	if isTerminal(r.cfg.Stdin) && isTerminal(r.cfg.Stdout) {
		t, err := openTerminal(r.cfg.Stdin, r.cfg.Stdout)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSetup, err)
		}
		r.term = t
		r.cleanup = append(r.cleanup, func() { t.slave.Close(); t.master.Close() })
	}
	stdin, stdout, stderr := r.cfg.Stdin, r.cfg.Stdout, r.cfg.Stderr
	if r.term != nil {
		// stdio: the pty's slave, or the caller's files as they are.
		stdin, stdout = r.term.slave, r.term.slave
		if isTerminal(stderr) {
			stderr = r.term.slave
		}
	}
	// Planning the filesystem (stat calls, placeholders) runs while the helper starts,
	// which takes the kernel some milliseconds (new namespaces, an exec).
	type prepared struct {
		cleanup []func()
		err     error
	}
	prep := make(chan prepared, 1)
	go func() {
		cleanup, err := r.prepare()
		prep <- prepared{cleanup, err}
	}()
	h, err := r.startHelper(stdin, stdout, stderr)
	p := <-prep
	r.cleanup = append(r.cleanup, p.cleanup...)
	if err != nil {
		return nil, err
	}
	if p.err != nil {
		return nil, p.err
	}
	r.report(pl)

	// The proxy and the command's environment.
	pcfg := proxyConfig(r.pol, r.log)
	if r.namespace() {
		// The listener lives in the sandbox's network namespace, where nothing but the
		// command can reach it: no token, which spares clients that mishandle proxy
		// credentials.
		pcfg.Token, pcfg.NoAuth = "", true
	}
	r.creds.ProxyConfig(&pcfg, !r.namespace())
	audit, err := OpenAuditLog(r.pol)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	if audit != nil {
		pcfg.Audit = audit
		r.cleanup = append(r.cleanup, func() { audit.Close() })
	}
	proxy, err := netproxy.New(pcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: proxy: %v", ErrSetup, err)
	}
	r.proxy = proxy
	r.cleanup = append(r.cleanup, func() {
		proxy.Close()
		WriteBlockedSummary(r.cfg.Diag, proxy.Summary())
	})
	port := netjail.ProxyPort
	if !r.namespace() {
		// No namespace: the proxy listens on the host's loopback, where only the port
		// that Landlock lets the command connect to, and the token, guard it.
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("%w: proxy listener: %v", ErrSetup, err)
		}
		r.ln = ln
		port = ln.Addr().(*net.TCPAddr).Port
		go proxy.Serve(ln)
	}
	routes, routeAddrs, err := r.routeListeners()
	if err != nil {
		return nil, err
	}
	proxyURL := proxy.URL("127.0.0.1:" + strconv.Itoa(port))
	socksURL := "socks5h://" + strings.TrimPrefix(proxyURL, "http://")
	env, removed := commandEnv(r.cfg.Env, r.pol.Process, proxyURL, socksURL, r.tmpdir, r.mode)
	if len(removed) > 0 {
		r.log.Debug("environment variables removed by the policy", "names", removed)
	}
	if env, err = r.credentialEnv(env, routeAddrs); err != nil {
		return nil, err
	}

	nproc, err := r.limitProcesses(h.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	ic := &initConfig{
		NProc:     nproc,
		Namespace: r.namespace(),
		Args:      r.cfg.Args,
		Env:       env,
		Dir:       r.cfg.Dir,
		ProxyPort: port,
		Routes:    routes,
		Plan:      r.plan,
		Scratch:   r.tmpdir,
		Landlock:  r.support.Landlock > 0,
		Seccomp:   r.support.Seccomp,
		Filter: seccomp.Policy{
			AllowUnixSockets: len(r.pol.Network.AllowUnixSockets) > 0,
			TCPOnly:          !r.namespace(),
			AllowNested:      r.pol.Sandbox.AllowNested,
			DenyPtrace:       r.support.Landlock == 0,
		},
		Setctty: r.term != nil,
	}
	if r.cgroup != nil {
		ic.CgroupLeave = r.cgroup.parentProcs()
	}
	ic.Net = r.netRules(port)
	return r.serve(ctx, h, ic)
}

// prepare makes the private temp dir and the filesystem plan. It runs alongside
// startHelper, so it returns its cleanup functions rather than adding them to r.cleanup.
func (r *runner) prepare() (cleanup []func(), err error) {
	tmp, err := os.MkdirTemp("", "cordon-")
	if err != nil {
		return nil, fmt.Errorf("%w: private temp dir: %v", ErrSetup, err)
	}
	r.tmpdir = tmp
	cleanup = append(cleanup, func() { _ = os.RemoveAll(tmp) })

	fs := r.pol.Filesystem
	grants := []fsjail.Grant{
		{Path: "/dev", Access: fsjail.ListDirs},
		{Path: "/dev/null", Access: fsjail.Read | fsjail.Write},
		{Path: "/dev/zero", Access: fsjail.Read | fsjail.Write},
		{Path: "/dev/full", Access: fsjail.Read | fsjail.Write},
		{Path: "/dev/random", Access: fsjail.Read},
		{Path: "/dev/urandom", Access: fsjail.Read},
		{Path: "/dev/tty", Access: fsjail.Read | fsjail.Write | fsjail.Ioctl},
		{Path: "/proc", Access: fsjail.Read},
		{Path: tmp, Access: fsjail.Read | fsjail.Write},
	}
	if r.term != nil {
		grants = append(grants, fsjail.Grant{Path: r.term.path, Access: fsjail.Read | fsjail.Write | fsjail.Ioctl})
	}
	if r.namespace() {
		grants = append(grants, fsjail.Grant{Path: "/dev/shm", Access: fsjail.Read | fsjail.Write})
	}
	denyWrite := append(fs.DeniesWrite(), r.creds.DenyWrite()...)
	if fs.BuiltinDenyWrite != nil {
		denyWrite = append(denyWrite, gitFileDenies(r.cfg.Dir)...)
	}
	plan, err := fsjail.Prepare(fsjail.Config{
		Read:        fs.AllowRead,
		Write:       fs.AllowWrite,
		DenyRead:    append(slices.Clone(fs.DenyRead), r.creds.DenyRead()...),
		DenyWrite:   denyWrite,
		Grants:      grants,
		UnixSockets: r.pol.Network.AllowUnixSockets,
		Cwd:         r.cfg.Dir,
		Mounts:      r.namespace(),
	})
	if err != nil {
		return cleanup, fmt.Errorf("%w: filesystem rules: %v", ErrSetup, err)
	}
	r.plan = plan
	cleanup = append(cleanup, func() {
		for _, p := range plan.Cleanup() {
			fmt.Fprintf(r.cfg.Diag, "cordon: placeholder %s is not empty; left in place\n", p)
		}
		if created := plan.Created(); len(created) > 0 {
			fmt.Fprintf(r.cfg.Diag, "cordon: warning: the command created write-protected paths (git hooks and config, editor and agent settings can run code outside the sandbox); review them before you use them:\n  - %s\n", strings.Join(created, "\n  - "))
		}
	})
	return cleanup, nil
}

// report tells the user what this run does not enforce.
func (r *runner) report(pl Plan) {
	if len(pl.NotEnforced) > 0 {
		fmt.Fprintf(r.cfg.Diag, "cordon: best effort: not enforced on this machine:\n  - %s\n", strings.Join(pl.NotEnforced, "\n  - "))
	}
	if r.mode == policy.ModeFallback {
		weaker := append(append(slices.Clone(pl.Weaker), r.plan.NotEnforced...), r.plan.Effects...)
		fmt.Fprintf(r.cfg.Diag, "cordon: fallback mode (no user namespaces); weaker than the namespace mode:\n  - %s\n", strings.Join(weaker, "\n  - "))
	}
}

// netRules are the Landlock network rules: in fallback mode, TCP connections go to the
// proxy's port only; binding is refused unless the policy allows local servers.
func (r *runner) netRules(proxyPort int) fsjail.NetRules {
	var n fsjail.NetRules
	abi := r.support.Landlock
	if abi >= 4 {
		n.RestrictBind = !r.pol.Network.AllowLocalBind
		if !r.namespace() {
			n.RestrictConnect = true
			n.ConnectPorts = append([]uint16{uint16(proxyPort)}, r.routePorts...)
		}
	}
	if abi >= 6 {
		n.Scope = true
	}
	return n
}

// limitProcesses arranges the process limit: a pids cgroup for real root, RLIMIT_NPROC for
// everyone else.
// It returns the RLIMIT_NPROC for the command, 0 for none.
func (r *runner) limitProcesses(helper int) (uint64, error) {
	max := r.pol.Process.MaxProcesses
	if max <= 0 {
		return 0, nil
	}
	if r.support.Root {
		if r.support.ProcessLimit == "" {
			return 0, nil // a gap the user accepted with best_effort
		}
		cg, err := newPidsCgroup(max + helperSlack)
		if err != nil {
			return 0, fmt.Errorf("%w: process limit: %v", ErrSetup, err)
		}
		r.cgroup = cg
		r.cleanup = append(r.cleanup, cg.remove)
		// The helper waits for its configuration: it has started nothing yet.
		if err := cg.add(helper); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrSetup, err)
		}
		return 0, nil
	}
	n := max + helperSlack
	if !r.namespace() {
		// Without a user namespace of its own, RLIMIT_NPROC counts every task of the user
		// on the machine: leave room for those that exist.
		n += countUserTasks(os.Getuid())
	}
	return uint64(n), nil
}

// helper is the started init helper, waiting for its configuration.
type helper struct {
	cmd *exec.Cmd
	// conn is the supervisor's side of the status socket. It goes through the runtime's
	// poller, so that a goroutine waiting for the helper's reports holds no P (a P held in a
	// blocking system call can delay every other goroutine by up to 10 ms).
	conn   *net.UnixConn
	cfgW   *os.File // the configuration pipe
	waited chan error
	sigc   chan os.Signal
	// readerDone is closed when readMessages has stopped reading conn; nil until it starts.
	readerDone chan struct{}
	readerStop chan struct{} // closed to make readMessages stop even if nobody reads msgs
}

// startHelper starts the init helper, in new namespaces in namespace mode. Until serve
// takes over, any way out of the run kills and reaps it.
func (r *runner) startHelper(stdin, stdout, stderr *os.File) (*helper, error) {
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: status socket: %v", ErrSetup, err)
	}
	helperSock := os.NewFile(uintptr(sv[1]), "status")
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		unix.Close(sv[0])
		helperSock.Close()
		return nil, fmt.Errorf("%w: config pipe: %v", ErrSetup, err)
	}
	attr := &syscall.SysProcAttr{Setsid: true}
	if r.namespace() {
		attr = netjail.SysProcAttr(os.Getuid(), os.Getgid())
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{initArg0},
		// The helper allocates little and lives briefly: no garbage collector. Two Ps, not
		// one: a goroutine blocked in a system call keeps its P until sysmon takes it back,
		// up to 10 ms later, and with one P the SIGCHLD of the command's exit would wait
		// that long to be seen. Setting GOMAXPROCS also spares the runtime its cgroup reads.
		Env:         []string{"GOGC=off", "GOMAXPROCS=2"},
		Stdin:       stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		ExtraFiles:  []*os.File{helperSock, cfgR},
		SysProcAttr: attr,
	}
	// Signals are caught before the helper exists and passed on to it: a ^C during setup
	// reaches the command rather than ending cordon alone.
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, forwarded...)
	r.cleanup = append(r.cleanup, func() { signal.Stop(sigc) })

	// The helper's parent-death signal is tied to the thread that starts it.
	goruntime.LockOSThread()
	err = cmd.Start()
	goruntime.UnlockOSThread()
	helperSock.Close()
	cfgR.Close()
	if err != nil {
		unix.Close(sv[0])
		cfgW.Close()
		if r.namespace() && netjail.Refused(err) {
			return nil, &refusedError{fmt.Sprintf("creating namespaces: %v", err)}
		}
		return nil, fmt.Errorf("%w: start the init helper: %v", ErrSetup, err)
	}
	conn, err := statusConn(sv[0])
	if err != nil {
		cfgW.Close()
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		return nil, fmt.Errorf("%w: status socket: %v", ErrSetup, err)
	}
	h := &helper{cmd: cmd, conn: conn, cfgW: cfgW, waited: make(chan error, 1), sigc: sigc}
	go func() { h.waited <- cmd.Wait() }()
	r.cleanup = append(r.cleanup, func() {
		if h.readerDone != nil {
			close(h.readerStop)
		}
		h.conn.Close()
		if h.readerDone != nil {
			<-h.readerDone
		}
		if h.cfgW != nil {
			// Never configured: it is waiting, and must not outlive the run.
			h.cfgW.Close()
			_ = cmd.Process.Kill()
			<-h.waited
		}
	})
	return h, nil
}

// serve hands the helper its configuration, serves the proxy, relays signals and the
// terminal until the command is done, and returns its status.
func (r *runner) serve(ctx context.Context, h *helper, ic *initConfig) (*Result, error) {
	cmd, conn, waited, sigc := h.cmd, h.conn, h.waited, h.sigc
	if r.term != nil {
		r.term.slave.Close()
	}
	_, err := h.cfgW.Write(ic.Marshal())
	h.cfgW.Close()
	h.cfgW = nil
	if err != nil {
		_ = cmd.Process.Kill()
		<-waited
		return nil, fmt.Errorf("%w: send configuration: %v", ErrSetup, err)
	}

	msgs := make(chan message, 8)
	h.readerDone, h.readerStop = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(h.readerDone)
		readMessages(conn, msgs, h.readerStop)
	}()

	var (
		started     bool
		exit        *message
		failure     *message
		interrupted bool
		ctxDone     = ctx.Done()
		waitErr     error
		helperDone  bool
		relay       = signalRelay{term: r.term, diag: r.cfg.Diag}
	)
	// The loop ends with the helper's exit report: by then every process of the command is
	// dead and reaped, and the helper only has to exit, which (unmounting its mount namespace
	// among other things) takes longer than anything else in a short run. It is reaped in the
	// background.
	for exit == nil && (!helperDone || msgs != nil) {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			switch m.Type {
			case msgListener:
				if m.Route != "" {
					if err := r.serveRouteFDs(m.Route, m.FDs); err != nil {
						failure = &message{Type: msgError, Step: stepListen, Err: err.Error()}
						_ = cmd.Process.Kill()
					}
					continue
				}
				for i, fd := range m.FDs {
					if i > 0 || r.ln != nil {
						unix.Close(fd)
						continue
					}
					f := os.NewFile(uintptr(fd), "proxy")
					ln, err := net.FileListener(f)
					f.Close()
					if err != nil {
						failure = &message{Type: msgError, Step: stepListen, Err: err.Error()}
						_ = cmd.Process.Kill()
						continue
					}
					r.ln = ln
					go r.proxy.Serve(ln)
				}
			case msgStarted:
				started = true
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
			relay.handle(s, func(s os.Signal) { _ = cmd.Process.Signal(s) }, func() { _ = conn.CloseWrite() })
		case <-ctxDone:
			ctxDone = nil
			interrupted = true
			// The helper kills the command and everything it started, and reports.
			_ = conn.CloseWrite()
			if !started {
				_ = cmd.Process.Kill()
			}
		case waitErr = <-waited:
			helperDone = true
		}
	}
	if !helperDone {
		go func() { <-waited }()
	}
	if r.term != nil {
		r.term.finish()
	}

	switch {
	case failure != nil && failure.Type == msgExec:
		err := fmt.Errorf("%s: %s", r.cfg.Args[0], strings.TrimPrefix(failure.Err, "look up "+r.cfg.Args[0]+": "))
		if failure.Step == cmdpath.OpLookup && (failure.Errno == int(unix.ENOENT) || failure.Errno == int(unix.ENOTDIR)) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, r.cfg.Args[0])
		}
		return nil, fmt.Errorf("%w: %v", ErrNotExecutable, err)
	case failure != nil:
		if r.namespace() && refusedStep(failure) {
			return nil, &refusedError{fmt.Sprintf("%s: %s", failure.Step, failure.Err)}
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrSetup, failure.Step, failure.Err)
	case exit != nil:
		res := &Result{ExitCode: exit.Code, Signal: exit.Signal, Mode: r.mode}
		if r.pol.Sandbox.BestEffort {
			res.NotEnforced = explain(r.pol, r.support, r.namespace(), "").NotEnforced
		}
		if ctx.Err() != nil {
			// Killed because ctx ended: the status says how, the error says why.
			return res, fmt.Errorf("command killed: %w", ctx.Err())
		}
		return res, nil
	case interrupted && ctx.Err() != nil:
		return nil, fmt.Errorf("%w: %v", ErrSetup, ctx.Err())
	case interrupted:
		return nil, fmt.Errorf("%w: interrupted", ErrSetup)
	}
	return nil, fmt.Errorf("%w: the init helper ended without a report (%v)", ErrSetup, waitErr)
}

// refusedStep reports whether a setup failure means the machine refuses namespaces (an
// AppArmor rule may let the namespaces be created and then refuse what they are for).
func refusedStep(m *message) bool {
	switch m.Step {
	case stepLoopback, stepListen, stepMount:
		return m.Errno == int(unix.EPERM) || m.Errno == int(unix.EACCES)
	}
	return false
}

// statusConn turns the supervisor's end of the status socket into a connection served by
// the runtime's poller; fd is consumed.
func statusConn(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "status")
	defer f.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, err
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("status socket is a %T", c)
	}
	return uc, nil
}

// readMessages reads the helper's reports until the socket is closed.
func readMessages(conn *net.UnixConn, out chan<- message, stop <-chan struct{}) {
	defer close(out)
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil || n == 0 {
			return
		}
		fds, err := netjail.ParseRights(oob[:oobn])
		if err != nil {
			return
		}
		var m message
		if err := json.Unmarshal(buf[:n], &m); err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			continue
		}
		m.FDs = fds
		select {
		case out <- m:
		case <-stop:
			for _, fd := range fds {
				unix.Close(fd)
			}
			return
		}
	}
}

// countUserTasks counts the tasks (threads) of a user on the machine.
func countUserTasks(uid int) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) != nil || int(st.Uid) != uid {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Threads:"); ok {
				t, _ := strconv.Atoi(strings.TrimSpace(v))
				n += t
			}
		}
	}
	return n
}
