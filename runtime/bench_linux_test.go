package runtime_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStart measures what cordon adds to starting a command: `cordon -- true` against
// `true`, alternated in the same run so that both see the same machine. It reports the
// medians, the time added, their ratio, and the peak RSS of the cordon process (from
// wait4's rusage; it covers the init helper too when cordon reaped it, and is then the
// larger of the two).
func BenchmarkStart(b *testing.B) {
	for _, mode := range []string{"namespace", "fallback"} {
		b.Run(mode, func(b *testing.B) { benchStart(b, mode) })
	}
}

func benchStart(b *testing.B, mode string) {
	s := machine()
	if mode == "namespace" && !s.UserNamespaces {
		b.Skip("user namespaces are refused: " + s.UserNamespacesError)
	}
	if s.Landlock == 0 || !s.Seccomp {
		b.Skip("Landlock or seccomp is missing")
	}
	cordon := buildCordon(b)
	dir := b.TempDir()
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	run := func(args ...string) (time.Duration, int64) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v: %s", args, err, out)
		}
		return time.Since(t0), cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	}
	var base, jailed []time.Duration
	var rss int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, _ := run(truePath)
		base = append(base, d)
		d, r := run(cordon, "--mode", mode, "--", truePath)
		jailed = append(jailed, d)
		rss = max(rss, r)
	}
	b.StopTimer()
	mb, mj := median(base), median(jailed)
	b.ReportMetric(ms(mb), "true-ms")
	b.ReportMetric(ms(mj), "cordon-ms")
	b.ReportMetric(ms(mj-mb), "added-ms")
	b.ReportMetric(float64(mj)/float64(mb), "ratio")
	b.ReportMetric(float64(rss)/1024, "peak-rss-MB")
	b.ReportMetric(0, "ns/op")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// buildCordon builds the cordon binary, as released (static), once per test binary.
func buildCordon(b *testing.B) string {
	b.Helper()
	if cordonBin != "" {
		return cordonBin
	}
	out := filepath.Join(os.TempDir(), "cordon-bench-"+filepath.Base(b.TempDir()))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/cordonsh/cordon/cmd/cordon")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Skipf("cannot build cordon (%v): %s", err, msg)
	}
	cordonBin = out
	return out
}

var cordonBin string
