package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// sandboxExecPath is where macOS keeps sandbox-exec. cordon never looks it up in PATH,
// where the command's environment could put another one.
const sandboxExecPath = "/usr/bin/sandbox-exec"

// currentSupport finds what a run needs to know, without starting a process.
func currentSupport() Support {
	s := Support{OS: "darwin", Arch: goruntime.GOARCH, Root: os.Geteuid() == 0}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		s.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	s.MacOS, _ = unix.Sysctl("kern.osproductversion")
	if !s.Root {
		// RLIMIT_NPROC does not bind root on macOS.
		s.ProcessLimit = "RLIMIT_NPROC"
	}
	switch fi, err := os.Stat(sandboxExecPath); {
	case err != nil:
		s.SandboxExecError = err.Error()
	case !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0:
		s.SandboxExecError = sandboxExecPath + " is not an executable file"
	default:
		s.SandboxExec = sandboxExecPath
	}
	return s
}

// probe is currentSupport plus one run of sandbox-exec with a trivial profile, which shows
// whether it applies profiles here (it cannot, for one, inside another sandbox).
func probe() Support {
	s := currentSupport()
	if s.SandboxExec == "" {
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, s.SandboxExec, "-p", "(version 1)\n(allow default)", "/usr/bin/true")
	cmd.Stdout, cmd.Stderr, cmd.Env = &out, &out, []string{}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		s.SandboxExec, s.SandboxExecError = "", fmt.Sprintf("%s does not apply a profile: %s", sandboxExecPath, msg)
	}
	return s
}
