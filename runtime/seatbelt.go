package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/cordonsh/cordon/fsjail"
	"github.com/cordonsh/cordon/internal/sbpl"
	"github.com/cordonsh/cordon/netjail"
	"github.com/cordonsh/cordon/policy"
)

// This file holds what the macOS run decides that can be tested anywhere: the whole
// Seatbelt profile of a run and the plan of a run. run_darwin.go carries it out.

// seatbeltInputs is what a run's profile is made from: the policy and what the run set up.
type seatbeltInputs struct {
	Policy *policy.Policy
	// Dir is the command's working directory (for the built-in list's git files).
	Dir string
	// TmpDir is the run's private TMPDIR; Canary a file in it that the profile denies, which
	// the helper tries to read before it starts the command, to prove the profile applies.
	TmpDir, Canary string
	// Terminal is the path of the run's pseudo-terminal, "" if it has none.
	Terminal string
	// Helper is cordon's own executable, which sandbox-exec starts as the in-sandbox helper.
	Helper string
	// ProxyPorts are the loopback ports of the proxy and of the upstream routes.
	ProxyPorts []uint16
	// DenyRead adds to the policy's deny_read (the files secrets are read from), DenyWrite
	// to its deny_write (the plugins' compilation cache).
	DenyRead, DenyWrite []string
	// Tag is the run's deny message.
	Tag string
	// Resolve and Expand default to fsjail.ResolvePath and fsjail.Expand; tests replace them.
	Resolve func(string) string
	Expand  func(pattern, cwd string, limit int) ([]string, error)
}

// seatbeltBase is what every process needs besides files and network, and what cordon
// allows of it. Everything else (other mach services, among them the keychain, the TLS
// trust service and LaunchServices, which would start programs outside the sandbox; IOKit;
// writing sysctls; Apple events; new pseudo-terminals, which would let the command open the
// user's other terminals) falls to (deny default).
const seatbeltBase = `; processes: start them; see and signal those of this sandbox only
(allow process-fork)
(allow process-info*
    (target same-sandbox))
(allow signal
    (target same-sandbox))
; system facts: hardware, OS version, limits, the process list (never another process's
; arguments and environment, kern.procargs2, which would hold cordon's secrets)
(allow sysctl-read
    (sysctl-name "kern.argmax")
    (sysctl-name "kern.boottime")
    (sysctl-name "kern.clockrate")
    (sysctl-name "kern.hostname")
    (sysctl-name "kern.maxfiles")
    (sysctl-name "kern.maxfilesperproc")
    (sysctl-name "kern.maxproc")
    (sysctl-name "kern.maxprocperuid")
    (sysctl-name "kern.ngroups")
    (sysctl-name "kern.osproductversion")
    (sysctl-name "kern.osrelease")
    (sysctl-name "kern.ostype")
    (sysctl-name "kern.osvariant_status")
    (sysctl-name "kern.osversion")
    (sysctl-name "kern.safeboot")
    (sysctl-name "kern.secure_kernel")
    (sysctl-name "kern.usrstack64")
    (sysctl-name "kern.version")
    (sysctl-name "security.mac.lockdown_mode_state")
    (sysctl-name "sysctl.proc_cputype")
    (sysctl-name "sysctl.proc_native")
    (sysctl-name "sysctl.proc_translated")
    (sysctl-name "vm.loadavg")
    (sysctl-name "vm.swapusage")
    (sysctl-name-prefix "hw.")
    (sysctl-name-prefix "machdep.cpu.")
    (sysctl-name-prefix "machdep.ptrauth")
    (sysctl-name-prefix "kern.proc.all")
    (sysctl-name-prefix "kern.proc.pgrp.")
    (sysctl-name-prefix "kern.proc.pid.")
    (sysctl-name-prefix "kern.proc.uid.")
    (sysctl-name-prefix "net.routetable."))
; system services: user and group names, notifications, logging, per-user temporary
; directories, preferences
(allow mach-lookup
    (global-name "com.apple.system.opendirectoryd.libinfo")
    (global-name "com.apple.system.opendirectoryd.membership")
    (global-name "com.apple.system.notification_center")
    (global-name "com.apple.system.logger")
    (global-name "com.apple.logd")
    (global-name "com.apple.bsd.dirhelper")
    (global-name "com.apple.cfprefsd.daemon")
    (global-name "com.apple.cfprefsd.agent"))
(allow user-preference-read)
; POSIX semaphores and shared memory (Python's multiprocessing, among others)
(allow ipc-posix-sem)
(allow ipc-posix-shm)
`

// seatbeltProfile writes the whole profile of a run: (deny default) with the run's tag, the
// base allowances, the file rules (fsjail), the network rules (netjail), and last the
// canary's denial. It reads the profile back (internal/sbpl) before returning it: a profile
// cordon cannot read is not handed to sandbox-exec.
func seatbeltProfile(in seatbeltInputs) (string, error) {
	pol := in.Policy
	fsp := pol.Filesystem
	resolve := in.Resolve
	if resolve == nil {
		resolve = fsjail.ResolvePath
	}
	// The same directories are resolved many times (every path's parents): once is enough.
	cache := map[string]string{}
	base := resolve
	resolve = func(p string) string {
		r, ok := cache[p]
		if !ok {
			r = base(p)
			cache[p] = r
		}
		return r
	}
	grants := []fsjail.Grant{
		{Path: in.TmpDir, Access: fsjail.Read | fsjail.Write},
		{Path: in.Helper, Access: fsjail.ReadFiles},
	}
	if in.Terminal != "" {
		grants = append(grants, fsjail.Grant{Path: in.Terminal, Access: fsjail.Read | fsjail.Write | fsjail.Ioctl})
	}
	files, err := fsjail.SeatbeltRules(fsjail.SeatbeltConfig{
		Config: fsjail.Config{
			Read:      fsp.AllowRead,
			Write:     fsp.AllowWrite,
			DenyRead:  append(slices.Clone(fsp.DenyRead), in.DenyRead...),
			DenyWrite: seatbeltDenyWrite(in),
			Grants:    grants,
			Cwd:       in.Dir,
		},
		Tag:     in.Tag,
		Resolve: resolve,
		Expand:  in.Expand,
	})
	if err != nil {
		return "", fmt.Errorf("filesystem rules: %w", err)
	}
	var sockets []string
	for _, s := range pol.Network.AllowUnixSockets {
		sockets = append(sockets, resolve(s))
	}
	network, err := netjail.SeatbeltRules(netjail.SeatbeltConfig{
		ProxyPorts:     in.ProxyPorts,
		UnixSockets:    sockets,
		AllowLocalBind: pol.Network.AllowLocalBind,
	})
	if err != nil {
		return "", fmt.Errorf("network rules: %w", err)
	}
	tag := fsjail.QuoteSBPL(in.Tag)
	var b strings.Builder
	b.WriteString("(version 1)\n")
	b.WriteString("; cordon's sandbox profile for one run; every denial is reported with the message below\n")
	b.WriteString("(deny default\n    (with message " + tag + "))\n")
	b.WriteString(seatbeltBase)
	b.WriteString(files)
	b.WriteString(network)
	b.WriteString("; the canary: cordon's helper checks that it cannot read it before it starts the command\n")
	b.WriteString("(deny file-read*\n    (literal " + fsjail.QuoteSBPL(resolve(in.Canary)) + ")\n    (with message " + tag + "))\n")
	profile := b.String()
	if err := checkProfile(profile); err != nil {
		return "", err
	}
	return profile, nil
}

// seatbeltDenyWrite is everything a run keeps read-only: deny_write, the built-in list with
// the git files of a worktree, and the inputs' additions.
func seatbeltDenyWrite(in seatbeltInputs) []string {
	fsp := in.Policy.Filesystem
	out := append(fsp.DeniesWrite(), in.DenyWrite...)
	if fsp.BuiltinDenyWrite != nil {
		out = append(out, gitFileDenies(in.Dir)...)
	}
	return out
}

// missingPaths returns the paths (not patterns) of list that do not exist. The profile
// denies writing them wherever they are created, but a directory above one of them that
// does not exist either may be created, and a prepared tree moved into its place; the run
// warns about those it finds at exit (existingPaths).
func missingPaths(list []string) []string {
	var out []string
	for _, p := range list {
		if fsjail.IsPattern(p) {
			continue
		}
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			out = append(out, p)
		}
	}
	return out
}

// existingPaths returns the paths of list that exist.
func existingPaths(list []string) []string {
	var out []string
	for _, p := range list {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// checkProfile reads a profile back and checks its outline: balanced, every string closed,
// nothing but (version 1) and allow and deny rules, and no rule that allows an operation on
// every path without a filter but the base's (which are not about files or the network).
func checkProfile(profile string) error {
	nodes, err := sbpl.Parse(profile)
	if err != nil {
		return fmt.Errorf("generated sandbox profile: %w", err)
	}
	for i, n := range nodes {
		switch h := n.Head(); {
		case i == 0 && h == "version":
		case h == "deny":
		case h == "allow":
			if len(n.List) < 3 {
				switch op := n.List[1].Text; op {
				case "process-fork", "user-preference-read", "ipc-posix-sem", "ipc-posix-shm":
				default:
					return fmt.Errorf("generated sandbox profile: %s allowed without a filter", op)
				}
			}
		default:
			return fmt.Errorf("generated sandbox profile: unexpected form %q at byte %d", h, n.Offset)
		}
	}
	return nil
}

// explainSeatbelt is Explain on macOS.
func explainSeatbelt(p *policy.Policy, s Support) Plan {
	var pl Plan
	switch {
	case p.Sandbox.Mode == policy.ModeNamespace:
		pl.Refused = fmt.Sprintf("sandbox.mode is %q, which needs Linux namespaces; on macOS every run uses sandbox-exec (sandbox.mode = %q)", policy.ModeNamespace, policy.ModeAuto)
		return pl
	case s.SandboxExec == "":
		pl.Refused = fmt.Sprintf("sandbox-exec does not work here (%s); cordon does not run commands unconfined", s.SandboxExecError)
		return pl
	}
	pl.Mode = policy.ModeSeatbelt
	if p.Process.MaxProcesses > 0 && s.ProcessLimit == "" {
		pl.NotEnforced = append(pl.NotEnforced, "process.max_processes: RLIMIT_NPROC does not bind root; set max_processes = 0 to run without a limit")
	}
	pl.Weaker = []string{
		"processes: no PID namespace: the command sees the machine's processes; those it leaves behind are killed through the sandbox when it exits, but if cordon's helper, which shares the sandbox, is killed first, only the command's process group is killed and other leftovers run on, still confined",
		"system calls: no seccomp filter; Seatbelt decides by operation, path and service name (docs/macos.md lists what the profile allows)",
		"network: the proxy listens on the machine's loopback; other local programs can connect to it but not use it without the run's token",
		"hard links and clones cannot be made (programs fall back to copying): Seatbelt cannot tell a link to a denied file from another",
		"POSIX shared memory and semaphores are shared with the user's other processes, by name",
		"the keychain and the TLS trust service (trustd) are out of reach: programs that check certificates with the Security framework (Go programs among them) cannot verify servers",
		"deny rules match a path as given, as on disk, and with ASCII letters in either case; another spelling of a non-ASCII name (Unicode normalization or case) is not matched",
		"denials are read from the unified log, which may drop or delay reports: the summary at exit is a lower bound",
	}
	if p.Network.AllowLocalBind {
		pl.Weaker = append(pl.Weaker, "network.allow_local_bind: the command can also connect to every loopback port of the machine, the servers of other programs included")
	}
	if p.Process.MaxProcesses > 0 && s.ProcessLimit != "" {
		pl.Weaker = append(pl.Weaker, "process.max_processes: RLIMIT_NPROC counts all the user's processes on the machine; cordon adds the number the user has when the run starts")
	}
	return pl
}
