package netproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// epoch anchors activity times to the monotonic clock.
var epoch = time.Now()

// activity is the time bytes last moved on any side of one client's exchange. Idle
// timeouts consult it, so that a connection quiet in one direction stays open while the
// other direction is busy (a long download, a long upload).
type activity struct {
	last atomic.Int64 // time.Since(epoch) at the last movement
	idle time.Duration
}

func newActivity(idle time.Duration) *activity {
	a := &activity{idle: idle}
	a.touch()
	return a
}

func (a *activity) touch() { a.last.Store(int64(time.Since(epoch))) }

// recent reports whether bytes moved within the idle timeout.
func (a *activity) recent() bool {
	return time.Since(epoch)-time.Duration(a.last.Load()) < a.idle
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// idleConn is a connection whose reads and writes fail with errIdle once nothing has moved
// on the exchange for the idle timeout. It counts the bytes each way. While fixed is set,
// reads keep the deadline the caller set (the header timeout). stopReads lets another
// goroutine end reads at a time of its choosing whatever the activity.
type idleConn struct {
	net.Conn
	act         *activity
	fixed       bool // owned by the goroutine that reads request heads
	read, wrote atomic.Int64

	mu     sync.Mutex // orders deadline changes between Read and stopReads
	stopAt time.Time
}

// stopReads makes reads fail from t on, even while the exchange is busy.
func (c *idleConn) stopReads(t time.Time) {
	c.mu.Lock()
	c.stopAt = t
	_ = c.Conn.SetReadDeadline(t)
	c.mu.Unlock()
}

// resume undoes stopReads.
func (c *idleConn) resume() {
	c.mu.Lock()
	c.stopAt = time.Time{}
	c.mu.Unlock()
}

func (c *idleConn) Read(p []byte) (int, error) {
	if c.fixed {
		n, err := c.Conn.Read(p)
		c.read.Add(int64(n))
		return n, err
	}
	for {
		c.mu.Lock()
		stopping := !c.stopAt.IsZero()
		if !stopping {
			_ = c.Conn.SetReadDeadline(time.Now().Add(c.act.idle))
		}
		c.mu.Unlock()
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.read.Add(int64(n))
			c.act.touch()
		}
		if n == 0 && isTimeout(err) {
			if !stopping && c.act.recent() {
				continue
			}
			return 0, errIdle
		}
		return n, err
	}
}

func (c *idleConn) Write(p []byte) (int, error) {
	var done int
	for {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.act.idle))
		n, err := c.Conn.Write(p[done:])
		done += n
		c.wrote.Add(int64(n))
		if n > 0 {
			c.act.touch()
		}
		if err != nil && isTimeout(err) {
			if n > 0 || c.act.recent() {
				continue
			}
			return done, errIdle
		}
		return done, err
	}
}

// tunnelChunk is how many bytes one splice call may move before the copy loop looks at
// the clock again. Large enough that the loop costs nothing next to the copying.
// A destination that takes a whole chunk more slowly than the idle timeout is treated as
// stalled.
const tunnelChunk = 1 << 20

// tunnel copies bytes both ways between client and up until both directions end, then
// closes both. head and upHead are bytes already read from each side (buffered by a
// protocol reader) that go first. It returns the bytes sent each way and the first error
// other than a clean end of stream.
//
// The copy is io.Copy from one connection to the other through an io.LimitedReader, which
// *net.TCPConn turns into splice(2) on Linux: the bytes never enter user space. Read and
// write deadlines bound idle time; a read that times out while the other direction moved
// bytes recently just waits again.
func (p *Proxy) tunnel(client net.Conn, head []byte, up net.Conn, upHead []byte) (upBytes, downBytes int64, err error) {
	act := newActivity(p.cfg.IdleTimeout)
	tuneLoopback(client)
	tuneLoopback(up)
	var wg sync.WaitGroup
	var upErr error
	wg.Add(1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer wg.Done()
		upBytes, upErr = pipe(up, client, head, act)
	}()
	downBytes, err = pipe(client, up, upHead, act)
	wg.Wait()
	if err == nil {
		err = upErr
	}
	return upBytes, downBytes, err
}

// loopbackBuffer is the socket buffer size for tunnel ends on loopback.
const loopbackBuffer = 256 << 10

// tuneLoopback gives a TCP connection to a loopback peer fixed, moderate socket buffers.
// Autotuned buffers grow to megabytes, which on loopback only spreads the copies over more
// cache: measured here, a tunnel between loopback ends moves about twice as many bytes per
// second with 256 KiB buffers. Connections to other hosts keep autotuning, which they need
// for long, fast paths.
func tuneLoopback(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	if ra, ok := tc.RemoteAddr().(*net.TCPAddr); ok && ra.IP.IsLoopback() {
		_ = tc.SetReadBuffer(loopbackBuffer)
		_ = tc.SetWriteBuffer(loopbackBuffer)
	}
}

// pipe copies src to dst (after head) until src ends, then half-closes dst so that its
// peer sees the end too. On an error it closes both, which ends the other direction.
func pipe(dst, src net.Conn, head []byte, act *activity) (int64, error) {
	var total int64
	fail := func(err error) (int64, error) {
		_ = src.Close()
		_ = dst.Close()
		return total, err
	}
	if len(head) > 0 {
		_ = dst.SetWriteDeadline(time.Now().Add(act.idle))
		n, err := dst.Write(head)
		total += int64(n)
		if err != nil {
			return fail(err)
		}
		act.touch()
	}
	// Each direction looks at the clock at least every half idle timeout while bytes
	// move, so that the other direction, if quiet, sees recent activity when it asks.
	window := act.idle / 2
	lr := &io.LimitedReader{R: src}
	for {
		now := time.Now()
		readBy, writeBy := now.Add(window), now.Add(act.idle+time.Second)
		_ = src.SetReadDeadline(readBy)
		_ = dst.SetWriteDeadline(writeBy)
		lr.N = tunnelChunk
		n, err := io.Copy(dst, lr)
		total += n
		if n > 0 {
			act.touch()
		}
		switch {
		case err == nil && lr.N > 0: // src ended
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			} else {
				_ = dst.Close()
			}
			return total, nil
		case err == nil: // a full chunk
			continue
		case isTimeout(err) && time.Now().Before(writeBy):
			// The read timed out; splice had nothing in flight. A write timeout (at
			// writeBy or later) may have lost bytes in splice's pipe, so it ends the
			// tunnel like any other error.
			if n > 0 || act.recent() {
				continue
			}
			return fail(errIdle)
		case errors.Is(err, net.ErrClosed):
			return fail(nil)
		}
		return fail(err)
	}
}
