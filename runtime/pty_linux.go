package runtime

import (
	"fmt"
	"os"
	"strconv"

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
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		return fail(fmt.Errorf("unlock pty: %w", err))
	}
	n, err := unix.IoctlGetInt(mfd, unix.TIOCGPTN)
	if err != nil {
		return fail(fmt.Errorf("pty number: %w", err))
	}
	t.path = "/dev/pts/" + strconv.Itoa(n)
	sfd, err := unix.Open(t.path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("open %s: %w", t.path, err))
	}
	t.slave = os.NewFile(uintptr(sfd), t.path)
	// The command's terminal starts with the user's modes (erase character, UTF-8 input)
	// and size.
	if tio, err := unix.IoctlGetTermios(int(in.Fd()), unix.TCGETS); err == nil {
		_ = unix.IoctlSetTermios(sfd, unix.TCSETS, tio)
	}
	if err := unix.SetNonblock(mfd, true); err != nil {
		return fail(fmt.Errorf("pty: %w", err))
	}
	t.master = os.NewFile(uintptr(mfd), "/dev/ptmx")
	t.resize()
	return t, nil
}
