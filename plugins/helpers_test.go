package plugins

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cordonsh/cordon/hostmatch"
	"github.com/cordonsh/cordon/plugins/internal/guestbuild"
)

var (
	testDir   string // removed after the tests
	buildMu   sync.Mutex
	builtWasm = map[string]string{}
	buildErrs = map[string]error{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cordon-plugins-test-")
	if err != nil {
		panic(err)
	}
	testDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// guest builds the Go plugin at rel (relative to this package) once per test binary and
// returns the path of its .wasm.
func guest(tb testing.TB, rel string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtWasm[rel]; ok {
		return p
	}
	if err, ok := buildErrs[rel]; ok {
		tb.Fatal(err)
	}
	out := filepath.Join(testDir, "wasm", strings.ReplaceAll(rel, "/", "_")+".wasm")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := guestbuild.Build(ctx, rel, out); err != nil {
		buildErrs[rel] = err
		tb.Fatal(err)
	}
	builtWasm[rel] = out
	return out
}

const (
	faultyGuest = "testdata/guests/faulty"
	bearerGuest = "examples/bearer"
	sigv4Guest  = "examples/sigv4"
	githubGuest = "examples/githubro"
)

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newTestHost returns a Host with the test binary's compilation cache and a logger that
// records everything.
func newTestHost(tb testing.TB) (*Host, *logBuf) {
	tb.Helper()
	logs := &logBuf{}
	h, err := NewHost(HostConfig{
		CacheDir: filepath.Join(testDir, "cache"),
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close(context.Background()) })
	return h, logs
}

func patterns(ss ...string) []hostmatch.Pattern {
	var out []hostmatch.Pattern
	for _, s := range ss {
		out = append(out, hostmatch.MustParse(s))
	}
	return out
}

// load loads a plugin or fails the test.
func load(tb testing.TB, h *Host, cfg PluginConfig) *Plugin {
	tb.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.Hosts == nil {
		cfg.Hosts = patterns("api.example.com", "*.amazonaws.com", "api.github.com")
	}
	p, err := h.Load(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	return p
}

// newReq returns a request for method and url with headers given as "K: V" strings.
func newReq(tb testing.TB, method, url string, headers ...string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			tb.Fatalf("bad header %q", h)
		}
		req.Header.Add(k, strings.TrimPrefix(v, " "))
	}
	return req
}

// guestMemories returns a copy of the memory of every idle instance of p.
func guestMemories(p *Plugin) [][]byte {
	var out [][]byte
	var back []*instance
	for {
		select {
		case in := <-p.pool.idle:
			b, _ := in.mod.Memory().Read(0, in.mod.Memory().Size())
			out = append(out, bytes.Clone(b))
			back = append(back, in)
			continue
		default:
		}
		break
	}
	for _, in := range back {
		p.pool.idle <- in
	}
	return out
}
