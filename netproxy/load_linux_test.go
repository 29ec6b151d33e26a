package netproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	goruntime "runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// raiseFDLimit lifts the soft limit on open files to the hard limit.
func raiseFDLimit(t testing.TB, need uint64) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	if r.Cur < need {
		t.Skipf("needs %d open files; the hard limit is %d", need, r.Max)
	}
}

// echoServer accepts connections and echoes them until closed.
func echoServer(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l
}

// openTunnel opens a CONNECT tunnel to addr through the proxy and checks it echoes.
func openTunnel(proxyAddr, authority string) (net.Conn, error) {
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\n%s\r\n", authority, authHeader(testToken))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("CONNECT: %v %v", resp, err)
	}
	msg := []byte("0123456789abcdef")
	if _, err := c.Write(msg); err != nil {
		c.Close()
		return nil, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != string(msg) {
		c.Close()
		return nil, fmt.Errorf("echo %q: %v", got, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// TestLoad1000Tunnels holds 1,000 tunnels open at once, checks that each still works with
// all of them open, closes them, and checks that the proxy is back to its goroutines and
// file descriptors from before.
func TestLoad1000Tunnels(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	const n = 1000
	raiseFDLimit(t, 8*n+200)
	leakCheck(t)
	echo := echoServer(t)
	e := startProxy(t, testConfig())
	authority := "allowed.test:" + fmt.Sprint(echo.Addr().(*net.TCPAddr).Port)

	g0, fd0 := goruntime.NumGoroutine(), countFDs(t)
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 64) // bounded dialing: the listen backlog is finite
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := openTunnel(e.addr, authority)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("opened %d tunnels in %v", n, time.Since(start))

	e.p.mu.Lock()
	open := len(e.p.conns)
	e.p.mu.Unlock()
	if open != 2*n {
		t.Errorf("the proxy tracks %d connections, want %d (client and upstream per tunnel)", open, 2*n)
	}
	// Every tunnel still works with all of them open.
	for i, c := range conns {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range conns {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != byte(i) {
			t.Fatalf("tunnel %d: %v %v", i, b, err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	// The proxy notices each closed client and ends its tunnel.
	for i := 0; i < 200; i++ {
		e.p.mu.Lock()
		open = len(e.p.conns)
		e.p.mu.Unlock()
		if open == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if open != 0 {
		t.Errorf("%d connections left open after the clients closed", open)
	}
	// Back to where it was before the tunnels, with the proxy still running. (Splice
	// pipes are cached until a garbage collection.)
	var g, fd int
	for i := 0; i < 100; i++ {
		goruntime.GC()
		g, fd = goruntime.NumGoroutine(), countFDs(t)
		if g <= g0 && fd <= fd0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("with the proxy running: goroutines %d -> %d, fds %d -> %d", g0, g, fd0, fd)
}
