package netproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// childEnv makes the test binary run a bare proxy instead of the tests (see
// BenchmarkRSS): it prints the proxy's address and serves until its stdin closes.
const childEnv = "NETPROXY_TEST_CHILD_PROXY"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChildProxy())
	}
	os.Exit(m.Run())
}

// everythingLoopback resolves every name to 127.0.0.1.
type everythingLoopback struct{}

func (everythingLoopback) LookupNetIP(_ context.Context, _, _ string) ([]netip.Addr, error) {
	return addrs("127.0.0.1"), nil
}

func runChildProxy() int {
	cfg := testConfig()
	cfg.Resolver = everythingLoopback{}
	p, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { _ = p.Serve(l) }()
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, l.Addr())
	_ = w.Flush()
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = p.Close()
	return 0
}

// startChildProxy runs the proxy alone in a child process (this test binary, see
// TestMain), so that its memory can be measured without the tests' own.
func startChildProxy(b testing.TB) (addr string, pid int) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid
}
