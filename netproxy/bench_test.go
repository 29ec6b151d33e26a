package netproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// sink accepts connections and counts what it reads, so that a writer can wait until
// every byte it sent has arrived.
type sink struct {
	l net.Listener
	n atomic.Int64
}

func newSink(b *testing.B) *sink {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &sink{l: l}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					s.n.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *sink) waitFor(n int64) {
	for s.n.Load() < n {
		time.Sleep(50 * time.Microsecond)
	}
}

// BenchmarkTunnelThroughput sends bulk data one way over loopback: directly, and through
// a CONNECT tunnel of the proxy. The ratio of the two MB/s figures is the proxy's cost.
func BenchmarkTunnelThroughput(b *testing.B) {
	const chunk = 256 << 10
	buf := make([]byte, chunk)
	run := func(b *testing.B, open func(s *sink) net.Conn) {
		s := newSink(b)
		c := open(s)
		defer c.Close()
		b.SetBytes(chunk)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		s.waitFor(int64(b.N) * chunk)
	}
	b.Run("direct", func(b *testing.B) {
		run(b, func(s *sink) net.Conn {
			c, err := net.Dial("tcp", s.l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			return c
		})
	})
	b.Run("connect", func(b *testing.B) {
		// The proxy runs in its own process, as it does in a run: one process moving
		// bytes between two others.
		addr, _ := startChildProxy(b)
		run(b, func(s *sink) net.Conn {
			c, err := openTunnelNoEcho(addr, fmt.Sprintf("allowed.test:%d", s.l.Addr().(*net.TCPAddr).Port))
			if err != nil {
				b.Fatal(err)
			}
			return c
		})
	})
	b.Run("connect-in-process", func(b *testing.B) {
		e := startProxy(b, testConfig())
		run(b, func(s *sink) net.Conn {
			c, err := openTunnelNoEcho(e.addr, fmt.Sprintf("allowed.test:%d", s.l.Addr().(*net.TCPAddr).Port))
			if err != nil {
				b.Fatal(err)
			}
			return c
		})
	})
}

func openTunnelNoEcho(proxyAddr, authority string) (net.Conn, error) {
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\n%s\r\n", authority, authHeader(testToken))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("CONNECT: %v %v", resp, err)
	}
	return c, nil
}

// BenchmarkHTTPKeepAlive measures one small keep-alive GET at a time: directly, and through
// the proxy's forward path. The difference of the ns/op figures is the latency the proxy
// adds per request.
func BenchmarkHTTPKeepAlive(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	run := func(b *testing.B, c *http.Client, url string) {
		defer c.CloseIdleConnections()
		get := func() {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		get() // the connections exist before the timer starts
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			get()
		}
	}
	b.Run("direct", func(b *testing.B) {
		run(b, &http.Client{Transport: &http.Transport{}}, srv.URL+"/")
	})
	b.Run("proxy", func(b *testing.B) {
		e := startProxy(b, testConfig())
		e.audit = nil
		run(b, e.httpClient(), "http://allowed.test:"+port(srv)+"/")
	})
}
