package netproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestUpstreamFailures(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	closedPort := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		_, p, _ := net.SplitHostPort(l.Addr().String())
		return p
	}()
	cfg := testConfig()
	cfg.IdleTimeout = 300 * time.Millisecond
	cfg.DialTimeout = 300 * time.Millisecond
	res := baseResolver()
	res["blackhole.allowed.test"] = addrs("127.0.0.1")
	cfg.Resolver = res
	cfg.Dialer = blackholeDialer{}
	e := startProxy(t, cfg)
	for _, tc := range []struct {
		name, host, port string
		status           int
		msg              string
		socks            byte
	}{
		{"refused", "allowed.test", closedPort, 502, "refused the connection", socksRefused},
		{"no such host", "nx.allowed.test", "80", 502, "cannot resolve nx.allowed.test: no such host", socksHostUnreachable},
		{"dial timeout", "blackhole.allowed.test", "80", 504, "timed out after 300ms", socksTTLExpired},
		{"no response", "allowed.test", port(up.http) + "/slow", 504, "the upstream sent nothing for 300ms", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hp := tc.host + ":" + tc.port
			start := time.Now()
			r := e.raw(fmt.Sprintf("GET http://%s HTTP/1.1\r\n%s\r\n", hp, authHeader(testToken)))
			if r.StatusCode != tc.status || !strings.Contains(bodyString(r), tc.msg) || !strings.Contains(r.Header.Get("X-Cordon-Error"), tc.msg) {
				t.Errorf("GET: %s %q", r.Status, r.Header.Get("X-Cordon-Error"))
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if tc.socks == 0 {
				return
			}
			r = e.raw(fmt.Sprintf("CONNECT %s HTTP/1.1\r\n%s\r\n", hp, authHeader(testToken)))
			if r.StatusCode != tc.status || !strings.Contains(r.Header.Get("X-Cordon-Error"), tc.msg) {
				t.Errorf("CONNECT: %s %q", r.Status, r.Header.Get("X-Cordon-Error"))
			}
			p, _ := strconv.Atoi(tc.port)
			if code, _ := socksTry(t, e, 1, tc.host, uint16(p), 3); code != tc.socks {
				t.Errorf("SOCKS5 reply %d, want %d", code, tc.socks)
			}
		})
	}
	var failed int
	for _, ev := range e.audit.events(t) {
		if ev["event"] == "decision" && ev["decision"] == "allow" && ev["error"] != nil {
			failed++
		}
	}
	if failed < 8 {
		t.Errorf("%d failed connections audited, want every one", failed)
	}
}

// blackholeDialer hangs for "blackhole" destinations (none here but the port-80 one) and
// dials everything else.
type blackholeDialer struct{}

func (blackholeDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if strings.HasSuffix(address, ":80") {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func TestHeaderLimits(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.MaxHeaderBytes = 2048
	cfg.HeaderTimeout = 300 * time.Millisecond
	e := startProxy(t, cfg)

	t.Run("too large", func(t *testing.T) {
		for _, req := range []string{
			"GET http://allowed.test/ HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n",
			"GET http://allowed.test/" + strings.Repeat("a", 8000) + " HTTP/1.1\r\n\r\n",
			"GET http://allowed.test/ HTTP/1.1\r\n" + strings.Repeat("X-A: b\r\n", 2000) + "\r\n",
		} {
			if r := e.raw(req); r.StatusCode != 431 {
				t.Errorf("%d-byte head: %s", len(req), r.Status)
			}
		}
	})
	t.Run("slow head", func(t *testing.T) {
		c := e.dial()
		start := time.Now()
		fmt.Fprint(c, "GET http://allowed.test/ HTTP/1.1\r\n")
		for i := 0; i < 20; i++ { // slowloris: a header line every 50ms, never the end
			if _, err := fmt.Fprintf(c, "X-%d: y\r\n", i); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, err := io.ReadAll(c)
		if d := time.Since(start); err != nil || d > 2*time.Second {
			t.Errorf("closed after %v (%v); want about 300ms", d, err)
		}
	})
	t.Run("slow SOCKS5 handshake", func(t *testing.T) {
		c := e.dial()
		start := time.Now()
		_, _ = c.Write([]byte{5, 1})
		_, _ = io.ReadAll(c)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("closed after %v; want about 300ms", d)
		}
	})
}

// TestSlowClientsDoNotBlockOthers fills every connection slot but one with slowloris
// clients: others are still served, and once all slots are taken a new client waits only
// until the header timeout frees one.
func TestSlowClientsDoNotBlockOthers(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	cfg := testConfig()
	cfg.MaxConns = 4
	cfg.HeaderTimeout = 500 * time.Millisecond
	e := startProxy(t, cfg)
	req := fmt.Sprintf("GET http://allowed.test:%s/ HTTP/1.1\r\nConnection: close\r\n%s\r\n", port(up.http), authHeader(testToken))
	var slow []net.Conn
	for i := 0; i < 3; i++ {
		c := e.dial()
		fmt.Fprint(c, "GET http://allowed.test/ HTTP/1.1\r\n")
		slow = append(slow, c)
	}
	start := time.Now()
	if r := e.raw(req); r.StatusCode != 200 {
		t.Fatalf("with 3 slow clients: %s", r.Status)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("a free slot took %v", d)
	}
	// Fill the last slot, then one more must wait for a slow client to time out.
	c := e.dial()
	fmt.Fprint(c, "GET http://allowed.test/ HTTP/1.1\r\n")
	slow = append(slow, c)
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	if r := e.raw(req); r.StatusCode != 200 {
		t.Fatalf("after the timeout: %s", r.Status)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %v; the header timeout should have freed a slot within 500ms", d)
	}
	for _, c := range slow {
		c.Close()
	}
}

// TestTunnelIdleTimeout: a quiet tunnel closes after the idle timeout; a tunnel busy in one
// direction only stays open.
func TestTunnelIdleTimeout(t *testing.T) {
	leakCheck(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [1]byte
				if _, err := c.Read(b[:]); err != nil {
					return
				}
				if b[0] == 't' { // trickle: one byte every 100ms for 1.5s, never reading
					for i := 0; i < 15; i++ {
						if _, err := c.Write([]byte{'.'}); err != nil {
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
					_, _ = c.Write([]byte{'!'})
					return
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	cfg := testConfig()
	cfg.IdleTimeout = 400 * time.Millisecond
	e := startProxy(t, cfg)
	auth := "allowed.test:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)

	t.Run("quiet", func(t *testing.T) {
		c, br := e.connect(auth)
		_, _ = c.Write([]byte{'q'})
		start := time.Now()
		_, err := br.ReadByte()
		if d := time.Since(start); err == nil || d < 300*time.Millisecond || d > 3*time.Second {
			t.Errorf("quiet tunnel ended after %v with %v; want about 400ms", d, err)
		}
	})
	t.Run("one-way traffic", func(t *testing.T) {
		c, br := e.connect(auth)
		_, _ = c.Write([]byte{'t'})
		got, err := io.ReadAll(br)
		if string(got) != "..............."+"!" {
			t.Errorf("got %q, %v: the tunnel closed while bytes were moving", got, err)
		}
	})
	t.Run("socks5 quiet", func(t *testing.T) {
		p := uint16(l.Addr().(*net.TCPAddr).Port)
		code, c := socksTry(t, e, 1, "allowed.test", p, 3)
		if code != 0 {
			t.Fatal(code)
		}
		start := time.Now()
		_, err := c.Read(make([]byte, 1))
		if d := time.Since(start); err == nil || d > 3*time.Second {
			t.Errorf("ended after %v with %v", d, err)
		}
	})
}

func TestKeepAliveIdleTimeout(t *testing.T) {
	up := startUpstreams(t)
	cfg := testConfig()
	cfg.IdleTimeout = 300 * time.Millisecond
	e := startProxy(t, cfg)
	c := e.dial()
	fmt.Fprintf(c, "GET http://allowed.test:%s/ HTTP/1.1\r\n%s\r\n", port(up.http), authHeader(testToken))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatal(resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	start := time.Now()
	_, err = br.ReadByte()
	if d := time.Since(start); !errors.Is(err, io.EOF) || d > 2*time.Second {
		t.Errorf("idle keep-alive connection: %v after %v", err, d)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	p, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	var served []chan error
	var lns []string
	for i := 0; i < 2; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, l.Addr().String())
		ch := make(chan error, 1)
		go func() { ch <- p.Serve(l) }()
		served = append(served, ch)
	}
	// Live traffic on each listener: an open tunnel, a half-sent request, a stalled
	// SOCKS5 handshake, an upload in progress.
	var conns []net.Conn
	for _, addr := range lns {
		e := &env{t: t, p: p, addr: addr}
		c, _ := e.connect("allowed.test:" + port(up.http))
		conns = append(conns, c)
		c2 := e.dial()
		fmt.Fprint(c2, "GET http://allowed.test/ HTTP/1.1\r\n")
		c3 := e.dial()
		_, _ = c3.Write([]byte{5})
		c4 := e.dial()
		fmt.Fprintf(c4, "POST http://allowed.test:%s/ HTTP/1.1\r\nContent-Length: 1000000\r\n%s\r\npartial", port(up.http), authHeader(testToken))
		conns = append(conns, c2, c3, c4)
	}
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() { _ = p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, ch := range served {
		if err := <-ch; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("client connection not closed by Close: %v", err)
		}
		c.Close()
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := p.Serve(l); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
	_ = p.Close() // idempotent
}

func TestNewValidates(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no token":          {},
		"token and no-auth": {Token: "x", NoAuth: true},
		"negative limit":    {Token: "x", MaxConns: -1},
		"too broad allow":   {Token: "x", Allow: patterns("*.com")},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRefusedUploads: a refused request's body is drained so the connection can go on, but
// a client that stalls mid-body costs the proxy at most a second.
func TestRefusedUploads(t *testing.T) {
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	c := e.dial()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "POST http://denied.test/ HTTP/1.1\r\nContent-Length: 5\r\n%s\r\nhello", authHeader(testToken))
	fmt.Fprintf(c, "GET http://allowed.test:%s/ HTTP/1.1\r\n%s\r\n", port(up.http), authHeader(testToken))
	for _, want := range []int{403, 200} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("got %v, %v; want %d", resp, err, want)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}

	c = e.dial()
	start := time.Now()
	fmt.Fprintf(c, "POST http://denied.test/ HTTP/1.1\r\nContent-Length: 10\r\n%s\r\nhalf.", authHeader(testToken))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 403 || !resp.Close {
		t.Fatalf("got %v, %v; want 403 and close", resp, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("answered after %v", d)
	}
}

// TestStaleUpstreamRetry: a server that closes kept connections without saying so. An
// idempotent request is sent again on a new connection; a POST is not.
func TestStaleUpstreamRetry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	e := startProxy(t, testConfig())
	c := e.dial()
	br := bufio.NewReader(c)
	p := l.Addr().(*net.TCPAddr).Port
	for i, tc := range []struct {
		method string
		want   int
	}{{"GET", 200}, {"GET", 200}, {"HEAD", 200}, {"POST", 502}} {
		time.Sleep(50 * time.Millisecond) // the server's close arrives first
		fmt.Fprintf(c, "%s http://allowed.test:%d/ HTTP/1.1\r\nContent-Length: 0\r\n%s\r\n", tc.method, p, authHeader(testToken))
		resp, err := http.ReadResponse(br, &http.Request{Method: tc.method})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != tc.want {
			t.Errorf("request %d (%s): %s, want %d", i, tc.method, resp.Status, tc.want)
		}
	}
}
