package runtime

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openTerminal opens a pseudo-terminal with the user's terminal's modes and size.
func openTerminal(in, out *os.File) (*terminal, error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	t := &terminal{in: in, out: out}
	fail := func(err error) (*terminal, error) {
		unix.Close(mfd)
		if t.slave != nil {
			t.slave.Close()
		}
		return nil, err
	}
	// grantpt(3) and unlockpt(3), then ptsname(3): TIOCPTYGNAME writes the slave's name
	// into a 128-byte buffer, which no wrapper of x/sys/unix passes.
	if err := unix.IoctlSetInt(mfd, unix.TIOCPTYGRANT, 0); err != nil {
		return fail(fmt.Errorf("grant pty: %w", err))
	}
	if err := unix.IoctlSetInt(mfd, unix.TIOCPTYUNLK, 0); err != nil {
		return fail(fmt.Errorf("unlock pty: %w", err))
	}
	var name [128]byte
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(mfd), uintptr(unix.TIOCPTYGNAME), uintptr(unsafe.Pointer(&name[0]))); e != 0 {
		return fail(fmt.Errorf("pty name: %w", e))
	}
	t.path = unix.ByteSliceToString(name[:])
	sfd, err := unix.Open(t.path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("open %s: %w", t.path, err))
	}
	t.slave = os.NewFile(uintptr(sfd), t.path)
	// The command's terminal starts with the user's modes (erase character, UTF-8 input)
	// and size.
	if tio, err := unix.IoctlGetTermios(int(in.Fd()), unix.TIOCGETA); err == nil {
		_ = unix.IoctlSetTermios(sfd, unix.TIOCSETA, tio)
	}
	if err := unix.SetNonblock(mfd, true); err != nil {
		return fail(fmt.Errorf("pty: %w", err))
	}
	t.master = os.NewFile(uintptr(mfd), "/dev/ptmx")
	t.resize()
	return t, nil
}
