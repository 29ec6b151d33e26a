//go:build linux || darwin

package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// terminal relays between the user's terminal and a fresh pseudo-terminal whose other side
// is the command's controlling terminal. The user's terminal is put in raw mode for the
// run, so that every key (^C, ^Z, ^D) reaches the command's terminal and is interpreted
// there, and it is restored on every way out of Run (restore is idempotent and also runs
// when a relay goroutine panics).
type terminal struct {
	in, out  *os.File // the user's terminal
	master   *os.File // non-blocking, through the runtime's poller
	slave    *os.File // given to the helper as stdin, stdout (and stderr)
	path     string   // the slave's device path (/dev/pts/N, /dev/ttysNNN)
	saved    *term.State
	restored sync.Once

	outDone, inDone  chan struct{} // closed when copyOut, copyIn end
	cancelR, cancelW *os.File
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return f != nil && term.IsTerminal(int(f.Fd())) }

// start puts the user's terminal in raw mode and starts relaying.
func (t *terminal) start() error {
	saved, err := term.MakeRaw(int(t.in.Fd()))
	if err != nil {
		return fmt.Errorf("raw mode: %w", err)
	}
	t.saved = saved
	t.cancelR, t.cancelW, err = os.Pipe()
	if err != nil {
		t.restore()
		return err
	}
	t.outDone, t.inDone = make(chan struct{}), make(chan struct{})
	go t.copyOut()
	go t.copyIn()
	return nil
}

// copyOut copies the command's output until every process has closed the pty (read then
// fails with EIO).
func (t *terminal) copyOut() {
	defer close(t.outDone)
	defer t.recoverPanic()
	_, _ = io.Copy(t.out, t.master)
}

// copyIn copies the user's keys to the pty. It polls the user's terminal together with a
// cancel pipe rather than blocking in read, so that it stops when the run ends and does not
// swallow the keys typed after.
func (t *terminal) copyIn() {
	defer close(t.inDone)
	defer t.recoverPanic()
	buf := make([]byte, 32<<10)
	fds := []unix.PollFd{{Fd: int32(t.in.Fd()), Events: unix.POLLIN}, {Fd: int32(t.cancelR.Fd()), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) == 0 {
			continue
		}
		n, err := unix.Read(int(t.in.Fd()), buf)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if n <= 0 {
			return
		}
		if _, err := t.master.Write(buf[:n]); err != nil {
			return
		}
	}
}

// resize gives the pty the user's terminal's size; the kernel then signals SIGWINCH to the
// pty's foreground process group.
func (t *terminal) resize() {
	if ws, err := unix.IoctlGetWinsize(int(t.in.Fd()), unix.TIOCGWINSZ); err == nil {
		_ = unix.IoctlSetWinsize(int(t.master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// finish waits (briefly) for the command's last output, stops the relay and restores the
// user's terminal.
func (t *terminal) finish() {
	if t.outDone != nil {
		select {
		case <-t.outDone:
		case <-time.After(2 * time.Second):
		}
	}
	if t.cancelW != nil {
		t.cancelW.Close()
	}
	// The key relay must be gone before the terminal goes back to the caller: otherwise it
	// could still read (and swallow) a key typed after the run.
	if t.inDone != nil {
		select {
		case <-t.inDone:
		case <-time.After(2 * time.Second):
		}
	}
	t.restore()
	t.master.Close()
}

// restore puts the user's terminal back as it was. It is safe to call more than once and
// from any goroutine.
func (t *terminal) restore() {
	t.restored.Do(func() {
		if t.saved != nil {
			_ = term.Restore(int(t.in.Fd()), t.saved)
		}
	})
}

// recoverPanic restores the terminal before a panic in a relay goroutine ends the process.
func (t *terminal) recoverPanic() {
	if r := recover(); r != nil {
		t.restore()
		panic(r)
	}
}

// signalRelay passes the signals cordon receives during a run on to the command: a window
// size change goes to the pty, everything else to the helper, which holds it until the
// command has started. A command that ignores being asked to stop would keep cordon (and
// the user's terminal, in raw mode) waiting: the third request to stop ends the run.
type signalRelay struct {
	term         *terminal // nil without a pty
	diag         io.Writer
	terminations int
}

// handle relays s: forward sends it to the helper, end ends the run.
func (sr *signalRelay) handle(s os.Signal, forward func(os.Signal), end func()) {
	if s == unix.SIGWINCH && sr.term != nil {
		sr.term.resize()
		return
	}
	forward(s)
	if s == unix.SIGWINCH || s == unix.SIGUSR1 || s == unix.SIGUSR2 {
		return
	}
	if sr.terminations++; sr.terminations == 3 {
		fmt.Fprintf(sr.diag, "cordon: %v received three times; killing the command\n", s)
		end()
	}
}
