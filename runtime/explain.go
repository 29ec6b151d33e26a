package runtime

import (
	"fmt"

	"github.com/cordonsh/cordon/policy"
)

// Explain decides what a run of the policy gets on a machine with the given support: its
// mode, or why it would be refused, what cannot be enforced, and what the fallback mode
// does not give. Run makes the same decisions.
func Explain(p *policy.Policy, s Support) Plan {
	return explain(p, s, s.UserNamespaces, s.UserNamespacesError)
}

// explain is Explain with the namespace question answered separately: Run has not tried
// namespaces yet when it first asks.
func explain(p *policy.Policy, s Support, userns bool, usernsErr string) Plan {
	var pl Plan
	switch p.Sandbox.Mode {
	case policy.ModeFallback:
		pl.Mode = policy.ModeFallback
	case policy.ModeNamespace:
		if !userns {
			pl.Refused = fmt.Sprintf("sandbox.mode is %q but user namespaces are refused on this machine (%s)", policy.ModeNamespace, usernsErr)
			return pl
		}
		pl.Mode = policy.ModeNamespace
	default:
		switch {
		case userns:
			pl.Mode = policy.ModeNamespace
		case p.Sandbox.AllowFallback:
			pl.Mode = policy.ModeFallback
		default:
			pl.Refused = fmt.Sprintf("user namespaces are refused on this machine (%s); the fallback mode, which is weaker, runs only if the policy sets sandbox.allow_fallback = true or the command line says --mode fallback (see 'cordon doctor')", usernsErr)
			return pl
		}
	}
	fallback := pl.Mode == policy.ModeFallback
	gap := func(format string, args ...any) {
		pl.NotEnforced = append(pl.NotEnforced, fmt.Sprintf(format, args...))
	}

	switch {
	case s.Landlock == 0:
		gap("allow_read and allow_write: Landlock is not available (Linux 5.13 or later with Landlock enabled is needed); the command can read and write whatever its user can")
		if fallback {
			gap("network: without Landlock the fallback mode cannot restrict TCP connections")
		}
	case s.Landlock < 3:
		gap("truncating files outside allow_write: Landlock ABI %d cannot stop truncate(2) (ABI 3, Linux 6.2, is needed)", s.Landlock)
	}
	if fallback && s.Landlock > 0 && s.Landlock < 4 {
		gap("network: Landlock ABI %d has no TCP rules (ABI 4, Linux 6.7, is needed), so the fallback mode cannot keep the command off the network", s.Landlock)
	}
	if fallback && s.Landlock > 0 && s.Landlock < 6 {
		gap("signals: Landlock ABI %d cannot keep the command from signalling the user's other processes (ABI 6, Linux 6.12, is needed)", s.Landlock)
	}
	if len(p.Network.AllowUnixSockets) > 0 && s.Landlock < 9 {
		gap("allow_unix_sockets: with Landlock ABI %d the command can connect to every pathname unix socket it can reach, not only the listed ones (ABI 9 is needed)", s.Landlock)
	}
	if !s.Seccomp {
		gap("system call filter: seccomp is not available for %s (io_uring, TIOCSTI, new user namespaces and socket types are not restricted)", s.Arch)
	}
	if p.Process.MaxProcesses > 0 && s.ProcessLimit == "" {
		gap("process.max_processes: running as root without a writable pids cgroup (RLIMIT_NPROC does not bind root); set max_processes = 0 to run without a limit")
	}

	if fallback {
		pl.Weaker = []string{
			"network: TCP connections to any address on the proxy's port are possible (Landlock filters ports, not addresses); other ports, UDP, raw sockets and MPTCP are refused",
			"processes: the command sees the machine's processes and their command lines in /proc (it cannot trace them, read their memory or environment)",
			"lifetime: processes the command leaves behind are killed by cordon's helper process, which adopts them; if that helper is itself killed from outside (SIGKILL, the OOM killer) they survive, where a PID namespace would take them down",
			"deny_read: masked by Landlock rules instead of mounts; a denied path inside a writable tree can be overwritten or removed, not read, and names inside a denied directory can be listed",
			"/dev/shm (POSIX shared memory) is not available to the command",
		}
		if !s.Root {
			pl.Weaker = append(pl.Weaker, "capabilities: the bounding set stays full (an unprivileged process cannot empty it); no_new_privs keeps any capability from being gained")
		}
	}
	return pl
}
