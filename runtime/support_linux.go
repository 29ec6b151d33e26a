package runtime

import (
	"bytes"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cordonsh/cordon/fsjail"
	"github.com/cordonsh/cordon/netjail"
	"github.com/cordonsh/cordon/runtime/internal/seccomp"
)

// currentSupport finds everything but whether namespaces work, which costs a process.
func currentSupport() Support {
	s := Support{Arch: goruntime.GOARCH, Root: realRoot(), Landlock: fsjail.ABI()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		s.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if _, err := seccomp.Build(seccomp.Policy{}); err == nil {
		s.Seccomp = seccomp.Available()
	}
	if s.Root {
		_, s.ProcessLimit = pidsBase()
	} else {
		s.ProcessLimit = "RLIMIT_NPROC"
	}
	return s
}

func probe() Support {
	s := currentSupport()
	s.UserNamespacesError = probeNamespaces()
	s.UserNamespaces = s.UserNamespacesError == ""
	return s
}

// probeNamespaces starts the helper in new namespaces to try what namespace mode needs; it
// returns why that failed, or "".
func probeNamespaces() string {
	var stderr bytes.Buffer
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{initArg0, probeArg},
		Env:         []string{},
		Stderr:      &stderr,
		SysProcAttr: netjail.SysProcAttr(os.Getuid(), os.Getgid()),
	}
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return msg
		}
		return err.Error()
	}
	return ""
}

// realRoot reports whether the process's real uid is 0 in the initial user namespace: the
// one user that RLIMIT_NPROC does not bind.
func realRoot() bool {
	if os.Getuid() != 0 {
		return false
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		inside, _ := strconv.ParseUint(f[0], 10, 32)
		outside, _ := strconv.ParseUint(f[1], 10, 32)
		if inside == 0 {
			return outside == 0
		}
	}
	return false
}
