package netproxy

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// vmRSS returns a process's resident set size in kB, from /proc/PID/status.
func vmRSS(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkRSS reports the resident memory of a proxy process (VmRSS) when idle and while
// it carries 1,000 open tunnels. One op opens 1,000 tunnels, measures, and closes them.
func BenchmarkRSS(b *testing.B) {
	raiseFDLimit(b, 4*1000+200)
	addr, pid := startChildProxy(b)
	time.Sleep(200 * time.Millisecond)
	idle := vmRSS(b, pid)
	echo := echoServer(b)
	authority := "allowed.test:" + strconv.Itoa(echo.Addr().(*net.TCPAddr).Port)
	var peak float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conns := make([]net.Conn, 1000)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for j := range conns {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c, err := openTunnel(addr, authority)
				if err != nil {
					b.Error(err)
					return
				}
				conns[j] = c
			}()
		}
		wg.Wait()
		peak = max(peak, vmRSS(b, pid))
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	b.ReportMetric(idle/1024, "idle-MB")
	b.ReportMetric(peak/1024, "1000tunnels-MB")
	b.ReportMetric((peak-idle)/1000, "kB/tunnel")
}
