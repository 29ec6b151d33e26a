package main

import (
	"strings"
	"testing"

	cordonrt "github.com/cordonsh/cordon/runtime"
)

// TestDoctorMacOS shows a Mac to cordon doctor, as runtime.Probe describes one there.
func TestDoctorMacOS(t *testing.T) {
	mac := cordonrt.Support{OS: "darwin", Kernel: "Darwin 24.1.0", Arch: "arm64", MacOS: "15.1",
		SandboxExec: "/usr/bin/sandbox-exec", ProcessLimit: "RLIMIT_NPROC"}
	fake := func(s cordonrt.Support) {
		old := probeMachine
		probeMachine = func() cordonrt.Support { return s }
		t.Cleanup(func() { probeMachine = old })
	}
	dir := t.TempDir()

	fake(mac)
	code, out, _ := cli(t, dir, "doctor")
	for _, want := range []string{
		"system           macOS 15.1 (Darwin 24.1.0, arm64)",
		"sandbox          /usr/bin/sandbox-exec: applies profiles (deprecated by Apple",
		"mode             seatbelt (sandbox-exec",
		"weaker           processes: no PID namespace",
		"not enforced     nothing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d on a Mac that can run the policy", code)
	}

	broken := mac
	broken.SandboxExec, broken.SandboxExecError = "", "sandbox_apply: Operation not permitted"
	fake(broken)
	code, out, _ = cli(t, dir, "doctor")
	if code != 125 || !strings.Contains(out, "unavailable: sandbox_apply: Operation not permitted") || !strings.Contains(out, "a run would be refused") {
		t.Errorf("exit %d without a working sandbox-exec:\n%s", code, out)
	}

	fake(mac)
	code, out, _ = cli(t, dir, "doctor", "--mode", "namespace")
	if code != 125 || !strings.Contains(out, "needs Linux namespaces") {
		t.Errorf("exit %d for namespace mode on a Mac:\n%s", code, out)
	}
}
