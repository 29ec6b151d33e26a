package main

import (
	"fmt"
	"os"
	goruntime "runtime"
	"strings"

	"github.com/cordonsh/cordon/policy"
	cordonrt "github.com/cordonsh/cordon/runtime"
)

func init() {
	register(command{
		name:    "doctor",
		summary: "show what this machine supports and which mode a run gets",
		usage: func() string {
			fs := newFlagSet("doctor")
			(&policyFlags{}).register(fs)
			return `Usage: cordon doctor [flags]

Finds what this machine lets cordon enforce (Landlock and its ABI version, seccomp, user
namespaces, how the process limit is applied) and, for the policy the flags name (as a run
would load it), which mode a run gets: namespace, or the weaker fallback; what the fallback
does not give; and what cannot be enforced here at all. Trying user namespaces starts a
short-lived helper process. On macOS it says whether sandbox-exec applies profiles (one run
of it) and what the seatbelt mode gives less than Linux's namespace mode.

Exits 0 if a run of the policy would start, 125 if it would be refused.

Flags:
` + flagDefaults(fs)
		},
		run: runDoctor,
	})
}

func runDoctor(args []string, io stdio) int {
	fs := newFlagSet("doctor")
	var pf policyFlags
	pf.register(fs)
	if !parseFlags(fs, args, io) {
		return exitFailure
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "cordon doctor: unexpected argument %q\n", fs.Arg(0))
		return exitFailure
	}
	s := probeMachine()
	w := io.out
	row := func(k, v string) { fmt.Fprintf(w, "  %-16s %s\n", k, v) }
	fmt.Fprintln(w, "machine:")
	built := s.OS == "darwin" || goruntime.GOOS == "linux"
	switch {
	case s.OS == "darwin":
		macRows(row, s)
	case !built:
		row("system", goruntime.GOOS+"/"+s.Arch+": the sandbox for this system is not built yet")
	default:
		row("kernel", "Linux "+s.Kernel+" ("+s.Arch+")")
		row("landlock", landlockText(s.Landlock))
		row("seccomp", yesNo(s.Seccomp, "no system call filter for "+s.Arch))
		if s.UserNamespaces {
			row("user namespaces", "yes (user, network, mount, PID, IPC)")
		} else {
			row("user namespaces", "refused: "+s.UserNamespacesError)
			for _, h := range usernsHints() {
				row("", h)
			}
		}
		limit := s.ProcessLimit
		if limit == "" {
			limit = "none (root without a writable pids cgroup; RLIMIT_NPROC does not bind root)"
		}
		row("process limit", limit)
		who := "uid " + fmt.Sprint(os.Getuid())
		if s.Root {
			who = "root"
		}
		row("running as", who)
	}

	pol, err := pf.load()
	if err != nil {
		fmt.Fprintf(io.err, "cordon doctor: %v\n", err)
		return exitFailure
	}
	pl := cordonrt.Explain(pol, s)
	fmt.Fprintf(w, "\npolicy (%s):\n", strings.Join(pol.Sources, ", "))
	if !built {
		row("mode", "none: cordon refuses to run commands here")
		return exitFailure
	}
	if pl.Refused != "" {
		row("mode", "none: a run would be refused")
		row("why", pl.Refused)
		return exitFailure
	}
	mode := string(pl.Mode)
	if pl.Mode == policy.ModeSeatbelt {
		mode += " (sandbox-exec with a profile generated from the policy; docs/macos.md)"
	}
	row("mode", mode)
	for _, x := range pl.Weaker {
		row("weaker", x)
	}
	if len(pl.NotEnforced) == 0 {
		row("not enforced", "nothing")
		return 0
	}
	for _, x := range pl.NotEnforced {
		row("not enforced", x)
	}
	if !pol.Sandbox.BestEffort {
		row("so", "a run would be refused; set sandbox.best_effort = true to run anyway")
		return exitFailure
	}
	row("so", "the policy asks for best effort: a run starts and names these")
	return 0
}

// probeMachine is cordonrt.Probe; tests replace it to show another machine.
var probeMachine = cordonrt.Probe

// macRows describes a Mac: its version, and sandbox-exec, the one mechanism there.
func macRows(row func(k, v string), s cordonrt.Support) {
	row("system", "macOS "+s.MacOS+" ("+s.Kernel+", "+s.Arch+")")
	if s.SandboxExec != "" {
		row("sandbox", s.SandboxExec+": applies profiles (deprecated by Apple since macOS 10.8, still present)")
	} else {
		row("sandbox", "unavailable: "+s.SandboxExecError)
	}
	row("namespaces", "none on macOS: no PID or network namespace, no Landlock, no seccomp")
	limit := s.ProcessLimit
	if limit == "" {
		limit = "none (RLIMIT_NPROC does not bind root)"
	}
	row("process limit", limit)
	who := "uid " + fmt.Sprint(os.Getuid())
	if s.Root {
		who = "root"
	}
	row("running as", who)
}

// landlockText says what a Landlock ABI version lets cordon restrict.
func landlockText(abi int) string {
	if abi == 0 {
		return "not available (Linux 5.13 or later, with landlock in the lsm= boot list, is needed)"
	}
	have := []string{"files"}
	for _, f := range []struct {
		v    int
		what string
	}{
		{2, "renames across directories"}, {3, "truncation"}, {4, "TCP ports"},
		{5, "device ioctls"}, {6, "signals and abstract unix sockets"}, {9, "unix socket paths"},
	} {
		if abi >= f.v {
			have = append(have, f.what)
		}
	}
	return fmt.Sprintf("ABI %d: %s", abi, strings.Join(have, ", "))
}

func yesNo(ok bool, no string) string {
	if ok {
		return "yes"
	}
	return no
}

// usernsHints names the usual reasons a machine refuses user namespaces.
func usernsHints() []string {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	var h []string
	if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" {
		h = append(h, "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10 and later): give cordon an AppArmor profile with \"userns,\", or set kernel.apparmor_restrict_unprivileged_userns=0")
	}
	if read("/proc/sys/kernel/unprivileged_userns_clone") == "0" {
		h = append(h, "kernel.unprivileged_userns_clone = 0: set it to 1")
	}
	if read("/proc/sys/user/max_user_namespaces") == "0" {
		h = append(h, "user.max_user_namespaces = 0: set it above 0")
	}
	if _, err := os.Stat("/.dockerenv"); err == nil {
		h = append(h, "inside Docker: the default seccomp profile refuses user namespaces; run the container with --security-opt seccomp=unconfined or a profile that allows clone with CLONE_NEWUSER")
	}
	if len(h) == 0 {
		h = append(h, "the fallback mode (sandbox.allow_fallback = true, or --mode fallback) runs without them, weaker")
	}
	return h
}
