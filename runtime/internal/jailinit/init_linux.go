package jailinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cordonsh/cordon/fsjail"
	"github.com/cordonsh/cordon/netjail"
	"github.com/cordonsh/cordon/runtime/internal/cmdpath"
	"github.com/cordonsh/cordon/runtime/internal/seccomp"
)

// The helper takes over in this package's initialization, not in main: the packages it does
// not need (the proxy, the plugin host, HTTP, TLS) are then not yet initialized, and never
// are. Go initializes packages in import-path order as far as their imports allow, and every
// package initialized is paid in page faults, which on small virtual machines cost tens of
// microseconds each; this halves the helper's start. It is also where the main goroutine is
// still on the main thread, whose thread id is the process id, and locks it there: the
// command's Landlock domain is created on another thread, so that the command can neither
// signal nor trace the helper (both target the thread group leader).
func init() {
	if len(os.Args) == 0 || os.Args[0] != Arg0 {
		return
	}
	goruntime.LockOSThread()
	if len(os.Args) > 1 && os.Args[1] == ProbeArg {
		os.Exit(probeMain())
	}
	os.Exit(initMain())
}

// The signals the helper forwards to the command. SIGINT and SIGQUIT go to the command's
// process group, as a terminal would send them; the others to the command alone.
var Forwarded = []os.Signal{unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// release is closed when the helper has reaped the command; the thread that started the
// command waits for it, because the command's parent-death signal fires when that thread
// ends.
var release = make(chan struct{})

// initMain is the init helper. It runs in the sandbox's namespaces (namespace mode) or as a
// plain child of the supervisor (fallback mode), sets the sandbox up in the order below,
// starts the command from a confined thread, and stays as its reaper: it forwards signals,
// and when the command exits it kills whatever the command left behind and reports the
// exit status. Every failure before the command starts is reported with its step, and the
// command is then never started.
func initMain() int {
	status := FdStatus
	// From step 6 on the status socket goes through the runtime's poller (conn), so that the
	// goroutine waiting on it holds no P: a P held in a blocking system call stalls other
	// goroutines until sysmon takes it back, which can be 10 ms.
	var conn *os.File
	send := func(m Message) {
		if conn != nil {
			_, _ = conn.Write(Encode(m))
			return
		}
		_, _ = unix.Write(status, Encode(m))
	}
	fail := func(step string, err error) int {
		send(Message{Type: MsgError, Step: step, Err: err.Error(), Errno: ErrnoOf(err)})
		return 125
	}

	// Signals are caught from the start: those that arrive during setup are held and passed
	// to the command once it runs, so none is lost (and none ends the helper).
	sigc := make(chan os.Signal, 64)
	signal.Notify(sigc, append([]os.Signal{unix.SIGCHLD}, Forwarded...)...)

	// 1. Nothing in the sandbox may trace the helper or read its memory or environment: in
	//    namespace mode it keeps every capability of the sandbox's user namespace.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail("setting non-dumpable", err)
	}
	// 2. Descriptors leaked to cordon by its own parent stop here: every descriptor but
	//    stdio becomes close-on-exec, so the command gets stdio and nothing else.
	if err := closeOnExecFrom(3); err != nil {
		return fail("marking descriptors close-on-exec", err)
	}
	// 3. The configuration, in full, before anything else: the supervisor decided it all.
	var cfg Config
	data, err := io.ReadAll(io.LimitReader(os.NewFile(FdConfig, "config"), maxWire+1))
	if err == nil {
		err = cfg.Unmarshal(data)
	}
	if err != nil {
		return fail(StepConfig, err)
	}
	unix.Close(FdConfig)

	if cfg.Namespace {
		// 4. The network namespace starts with loopback down and nothing else.
		if err := netjail.LoopbackUp(); err != nil {
			return fail(StepLoopback, err)
		}
		// 5. The proxy's listener is created here, inside, and handed to the supervisor,
		//    which accepts on it from the host's side: the only way out of the namespace.
		fd, err := netjail.ListenLoopback(uint16(cfg.ProxyPort))
		if err != nil {
			return fail(StepListen, err)
		}
		err = netjail.SendFD(status, Encode(Message{Type: MsgListener}), fd)
		unix.Close(fd)
		if err != nil {
			return fail(StepListen, err)
		}
		//    And one for each upstream route, on the ports after the proxy's.
		for _, rt := range cfg.Routes {
			fd, err := netjail.ListenLoopback(uint16(rt.Port))
			if err != nil {
				return fail(StepListen, err)
			}
			err = netjail.SendFD(status, Encode(Message{Type: MsgListener, Route: rt.Name}), fd)
			unix.Close(fd)
			if err != nil {
				return fail(StepListen, err)
			}
		}
		// 6. Mounts, while the helper still has CAP_SYS_ADMIN in its user namespace: masks
		//    over denied paths, read-only binds, a /proc for the new PID namespace.
		if err := cfg.Plan.Mount(mountOptions(&cfg)); err != nil {
			return fail(StepMount, err)
		}
	} else {
		// Without a PID namespace the helper adopts the command's orphans, so that it can
		// kill them when the command exits.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fail("becoming a subreaper", err)
		}
	}

	// The supervisor shuts its side of the status socket down to end the run, and the
	// socket reads end of file if the supervisor dies.
	gone := make(chan struct{})
	c, err := pollerConn(status)
	if err != nil {
		return fail("watching the status socket", err)
	}
	conn = c
	go func() {
		buf := make([]byte, 16)
		for {
			if n, err := conn.Read(buf); n <= 0 || err != nil {
				close(gone)
				return
			}
		}
	}()

	// 7-11 on a thread of their own: see startConfined.
	started := make(chan startResult, 1)
	go startConfined(&cfg, started)
	res := <-started
	if res.err != nil {
		if res.step == "" {
			var pe *os.PathError
			op := ""
			if errors.As(res.err, &pe) {
				op = pe.Op
			}
			send(Message{Type: MsgExec, Step: op, Err: res.err.Error(), Errno: ErrnoOf(res.err)})
			return 126
		}
		return fail(res.step, res.err)
	}
	send(Message{Type: MsgStarted, Pid: res.pid})

	// The helper's own copies of stdio would keep a pipe or the terminal open after the
	// command's processes are gone.
	if null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		for fd := 0; fd <= 2; fd++ {
			_ = unix.Dup3(null, fd, 0)
		}
		unix.Close(null)
	}

	code, sig := reap(res.pid, cfg.Namespace, sigc, gone)
	close(release)
	if cfg.CgroupLeave != "" {
		_ = os.WriteFile(cfg.CgroupLeave, []byte("0"), 0)
	}
	send(Message{Type: MsgExit, Code: code, Signal: sig})
	return code
}

func mountOptions(cfg *Config) fsjail.MountOptions {
	return fsjail.MountOptions{Scratch: cfg.Scratch, Proc: true, Shm: true}
}

type startResult struct {
	pid  int
	step string // empty for an exec failure
	err  error
}

// startConfined confines the calling goroutine's thread and starts the command from it.
// Landlock, no_new_privs, the capability sets and the seccomp filter belong to a thread and
// are inherited by the processes it forks; the helper's other threads, the thread group
// leader first, stay outside the command's Landlock domain. The thread is never given back
// to the Go runtime: it waits for release and then ends with its goroutine.
func startConfined(cfg *Config, out chan<- startResult) {
	goruntime.LockOSThread()
	pid, step, err := confineAndStart(cfg)
	out <- startResult{pid, step, err}
	if err == nil {
		<-release
	}
}

func confineAndStart(cfg *Config) (int, string, error) {
	// 7. The process limit. RLIMIT_NPROC counts the tasks (processes and threads) of the
	//    user in the sandbox's user namespace; it does not bind real root, for which the
	//    supervisor put the helper in a pids cgroup instead.
	if cfg.NProc > 0 {
		lim := unix.Rlimit{Cur: cfg.NProc, Max: cfg.NProc}
		if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
			return 0, StepRlimit, err
		}
	}
	// 8. no_new_privs: nothing the command executes (setuid binaries, file capabilities)
	//    can raise its privileges. Landlock and seccomp require it of a thread without
	//    CAP_SYS_ADMIN, as in fallback mode, so it comes before them.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, StepNNP, err
	}
	// 9. Landlock: the filesystem rules (and, in fallback mode, TCP ports and scoping).
	if cfg.Landlock {
		if err := cfg.Plan.Restrict(cfg.Net); err != nil {
			return 0, StepLandlock, err
		}
	}
	// 10. Capabilities: none left in any set, and none to be had from executing as root.
	if err := dropCapabilities(); err != nil {
		return 0, StepCaps, err
	}
	// 11. seccomp last: it refuses calls the steps above need (mounting, among others).
	if cfg.Seccomp {
		prog, err := seccomp.Build(cfg.Filter)
		if err != nil {
			return 0, StepSeccomp, err
		}
		if err := seccomp.Install(prog); err != nil {
			return 0, StepSeccomp, err
		}
	}
	// 12. Find the command as the sandbox sees it, and start it in a new session (with its
	//     pty as controlling terminal), killed if this thread dies.
	if fi, err := os.Stat(cfg.Dir); err != nil {
		return 0, StepDir, err
	} else if !fi.IsDir() {
		return 0, StepDir, &os.PathError{Op: "chdir", Path: cfg.Dir, Err: unix.ENOTDIR}
	}
	path, err := cmdpath.LookPath(cfg.Args[0], cfg.Dir, cmdpath.EnvValue(cfg.Env, "PATH"))
	if err != nil {
		return 0, "", err
	}
	pid, err := syscall.ForkExec(path, cfg.Args, &syscall.ProcAttr{
		Dir:   cfg.Dir,
		Env:   cfg.Env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			Setsid:    true,
			Setctty:   cfg.Setctty,
			Ctty:      0,
			Pdeathsig: syscall.SIGKILL,
		},
	})
	if err != nil {
		return 0, "", &os.PathError{Op: "exec", Path: cfg.Args[0], Err: err}
	}
	return pid, "", nil
}

// dropCapabilities empties the calling thread's capability sets: the securebits that stop
// uid 0 from regaining capabilities on exec, then the bounding set (both need CAP_SETPCAP,
// which an unprivileged fallback run does not have and cannot use anyway), the ambient set,
// and effective, permitted and inheritable.
func dropCapabilities() error {
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if data[0].Effective&(1<<unix.CAP_SETPCAP) != 0 {
		const secbits = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<5 | 1<<6 | 1<<7 // all *_LOCKED, NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE; not KEEP_CAPS
		if err := unix.Prctl(unix.PR_SET_SECUREBITS, secbits, 0, 0, 0); err != nil {
			return fmt.Errorf("set securebits: %w", err)
		}
		for c, last := 0, capLastCap(); c <= last; c++ {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
			}
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	data = [2]unix.CapUserData{}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

func capLastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return 63 // PR_CAPBSET_DROP fails with EINVAL past the last one
}

// pollerConn returns the socket fd as a file served by the runtime's poller (os.File polls
// a descriptor in non-blocking mode). The package net would do the same, but importing it
// here would have the helper initialize most of the binary before it takes over.
func pollerConn(fd int) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "status"), nil
}

// closeOnExecFrom marks every descriptor from fd up close-on-exec.
func closeOnExecFrom(fd int) error {
	err := unix.CloseRange(uint(fd), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil || !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	// Before Linux 5.11.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n >= fd {
			unix.CloseOnExec(n)
		}
	}
	return nil
}

// reap waits for the command, forwarding signals, then kills everything the command left
// behind and returns its exit status.
func reap(pid int, namespace bool, sigc <-chan os.Signal, gone <-chan struct{}) (code, sig int) {
	for {
		var ws unix.WaitStatus
		for {
			wpid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || wpid <= 0 {
				break
			}
			if wpid == pid {
				killAll(namespace)
				switch {
				case ws.Exited():
					return ws.ExitStatus(), 0
				case ws.Signaled():
					return 128 + int(ws.Signal()), int(ws.Signal())
				}
				return 125, 0
			}
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
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// killAll kills every process the command left and reaps them. In a PID namespace its init
// kills them all with one kill(-1); otherwise the helper, a subreaper, kills its children
// until it has none, since orphans keep being reparented to it.
func killAll(namespace bool) {
	if namespace {
		_ = unix.Kill(-1, unix.SIGKILL)
	}
	self := os.Getpid()
	for {
		if !namespace {
			for _, c := range childrenOf(self) {
				_ = unix.Kill(c, unix.SIGKILL)
			}
		}
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || wpid <= 0 {
			return // ECHILD: nothing left
		}
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses and may hold anything.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil && ppid == pid {
				out = append(out, n)
			}
		}
	}
	return out
}

// probeMain tries what namespace mode needs and reports the first failure on stderr.
func probeMain() int {
	steps := []struct {
		name string
		f    func() error
	}{
		{StepLoopback, netjail.LoopbackUp},
		{"making mounts private", func() error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, "") }},
		{"mounting /proc", func() error {
			return unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}},
	}
	for _, s := range steps {
		if err := s.f(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v", s.name, err)
			return 1
		}
	}
	return 0
}
