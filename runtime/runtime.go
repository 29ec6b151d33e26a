// Package runtime runs one command inside cordon's sandbox: it turns a policy into the
// configurations of fsjail, netjail and netproxy, starts the proxy, spawns the command
// through the re-exec'd init helper, forwards signals, waits, and reports.
//
// On Linux a run gets one of two modes. In namespace mode the command runs in new user,
// network, mount, PID and IPC namespaces: its network has only loopback and the proxy's
// listener, denied paths are masked with mounts, and every process it starts dies with it.
// Landlock, seccomp, no_new_privs and an empty capability set apply in both modes. The
// fallback mode, for machines that refuse user namespaces, relies on Landlock and seccomp
// alone and is weaker; it runs only if the policy allows it, and says what is weaker.
// docs/linux.md describes both. On macOS every run is in the seatbelt mode: sandbox-exec
// with a profile generated from the policy, the proxy on the machine's loopback with the
// run's token (docs/macos.md).
//
// The package name shadows the standard library's runtime; import that one as goruntime.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cordonsh/cordon/policy"
)

// Config is one run.
type Config struct {
	// Policy is the validated policy to enforce. Required.
	Policy *policy.Policy
	// Args is the command and its arguments; Args[0] is looked up in the command's PATH,
	// inside the sandbox. Required.
	Args []string
	// Dir is the command's working directory. Defaults to the current directory.
	Dir string
	// Env is the environment before the policy's env_deny is applied. Defaults to os.Environ().
	Env []string
	// Stdin, Stdout and Stderr are the command's standard streams. Default to os.Stdin,
	// os.Stdout and os.Stderr. When Stdin and Stdout are both terminals the command gets a
	// fresh pseudo-terminal and cordon relays between the two; otherwise the files are
	// passed to the command as they are.
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
	// Diag receives cordon's own messages to the user (the mode, what is not enforced, the
	// summary of blocked requests). Defaults to Stderr.
	Diag io.Writer
	// Logger receives debug logs. Defaults to a logger that discards.
	Logger *slog.Logger
}

// Result is the outcome of a run that started the command.
type Result struct {
	// ExitCode is the command's exit status, or 128+N if it was killed by signal N.
	ExitCode int
	// Signal is N if the command was killed by signal N, else 0.
	Signal int
	// Mode is the mode the run got: policy.ModeNamespace or policy.ModeFallback on Linux,
	// policy.ModeSeatbelt on macOS.
	Mode policy.Mode
	// NotEnforced names the restrictions of the policy that this run could not apply
	// (non-empty only when the policy asks for best effort).
	NotEnforced []string
}

// Support is what this machine lets cordon enforce, as found by Probe.
type Support struct {
	// OS is the operating system as Go names it: "linux", "darwin". Explain reads "darwin"
	// as macOS and anything else as Linux.
	OS string
	// Kernel is the kernel's release, such as "6.8.0-45-generic".
	Kernel string
	// Arch is the machine's architecture as Go names it.
	Arch string
	// Landlock is the Landlock ABI version, 0 if Landlock is missing or disabled.
	Landlock int
	// Seccomp reports whether seccomp filters are available (and written for Arch).
	Seccomp bool
	// UserNamespaces reports whether cordon could create user, network, mount, PID and IPC
	// namespaces and set them up; if not, UserNamespacesError says why.
	UserNamespaces      bool
	UserNamespacesError string
	// Root reports whether cordon runs as uid 0.
	Root bool
	// ProcessLimit names how [process] max_processes is enforced: "RLIMIT_NPROC",
	// "cgroup pids (v1)", "cgroup pids (v2)", or "" if it cannot be.
	ProcessLimit string

	// MacOS is, on macOS, the system's version, such as "15.1".
	MacOS string
	// SandboxExec is, on macOS, the path of the sandbox-exec that confines commands, if it
	// is present and applies a profile; if not, SandboxExecError says why.
	SandboxExec      string
	SandboxExecError string
}

// Plan is what a run of a policy gets on a machine, as decided by Explain.
type Plan struct {
	// Mode is the mode a run gets; empty if the run would be refused.
	Mode policy.Mode
	// Refused says why a run would be refused, if it would.
	Refused string
	// NotEnforced names the restrictions the machine cannot apply: the run is refused unless
	// the policy asks for best effort, in which case these are printed.
	NotEnforced []string
	// Weaker names what the fallback mode does not give, printed at the start of every
	// fallback run; on macOS, what the seatbelt mode does not give compared with Linux's
	// namespace mode (cordon doctor shows it; docs/macos.md explains it).
	Weaker []string
}

// Run runs the command under the policy and waits for it. An error means the command did
// not run, or its confinement could not be completed (then nothing of it is left running);
// match it against ErrNotFound and ErrNotExecutable for the exit statuses 127 and 126. If
// ctx is done before the command exits, the command and everything it started are killed,
// and Run returns both the Result and an error wrapping ctx.Err(). A fallback-mode run makes
// the calling process non-dumpable (PR_SET_DUMPABLE 0), so that the command cannot read its
// memory or environment; it stays so.
func Run(ctx context.Context, cfg Config) (*Result, error) { return run(ctx, cfg) }

// MaybeInit runs the in-sandbox init helper if this process was started as one, and never
// returns in that case. main and TestMain call it first thing, before anything else starts
// goroutines or touches the filesystem.
func MaybeInit() { maybeInit() }

// Probe finds what this machine supports. On Linux it starts a short-lived helper process
// in new namespaces to see whether they work; on macOS it runs sandbox-exec once with a
// trivial profile. Either takes a few milliseconds.
func Probe() Support { return probe() }

// setDefaults checks a Config and fills in the defaults its fields document.
func (cfg *Config) setDefaults() error {
	if cfg.Policy == nil {
		return errors.New("runtime: Config.Policy is nil")
	}
	if len(cfg.Args) == 0 || cfg.Args[0] == "" {
		return errors.New("runtime: no command")
	}
	if cfg.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		cfg.Dir = wd
	}
	if abs, err := filepath.Abs(cfg.Dir); err == nil {
		cfg.Dir = abs
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.Stdin == nil {
		cfg.Stdin = os.Stdin
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Diag == nil {
		cfg.Diag = cfg.Stderr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
