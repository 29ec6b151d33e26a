//go:build unix

package runtime

import (
	"os/exec"
	"syscall"
)

// setProcessGroup runs a cmd: secret in a process group of its own, so that a timeout ends
// everything it started (a password manager's helpers too), not only the shell.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
