package plugins

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Run: go test -run '^$' -bench . -benchtime 2000x ./plugins
//
// Each benchmark also reports the median of its per-operation times ("p50-µs" or "p50-ms"),
// since a mean hides the pauses of a garbage collector in the guest.

// durations records per-operation times and reports their median.
type durations []time.Duration

func (d *durations) report(b *testing.B, unit string) {
	if len(*d) == 0 {
		return
	}
	s := slices.Clone(*d)
	slices.Sort(s)
	med := s[len(s)/2]
	switch unit {
	case "ms":
		b.ReportMetric(float64(med)/float64(time.Millisecond), "p50-ms")
	default:
		b.ReportMetric(float64(med)/float64(time.Microsecond), "p50-µs")
	}
}

// BenchmarkApply measures the latency a header plugin adds to a request: the bearer example
// with pooled instances; the same without pooling (a new instance per request, the baseline
// pooling is measured against); and setting the header natively in Go, the floor.
func BenchmarkApply(b *testing.B) {
	h, _ := newTestHost(b)
	p := load(b, h, PluginConfig{Name: "bearer", Path: guest(b, bearerGuest), Secrets: map[string][]byte{"token": []byte("tok-123")}})
	ctx := context.Background()
	req := newReq(b, "GET", "https://api.example.com/v1/messages", "Content-Type: application/json", "Accept: */*", "User-Agent: bench")

	b.Run("pooled", func(b *testing.B) {
		var d durations
		for i := 0; i < b.N; i++ {
			delete(req.Header, "Authorization")
			start := time.Now()
			if _, err := p.Apply(ctx, req); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(start))
		}
		d.report(b, "µs")
	})
	b.Run("unpooled", func(b *testing.B) {
		var d durations
		for i := 0; i < b.N; i++ {
			delete(req.Header, "Authorization")
			start := time.Now()
			c, err := newCall(p, req)
			if err != nil {
				b.Fatal(err)
			}
			in, err := p.instantiate(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := in.run(ctx, c); err != nil {
				b.Fatal(err)
			}
			c.commit()
			in.mod.Close(ctx)
			d = append(d, time.Since(start))
		}
		d.report(b, "µs")
	})
	b.Run("native", func(b *testing.B) {
		var d durations
		token := []byte("tok-123")
		for i := 0; i < b.N; i++ {
			delete(req.Header, "Authorization")
			start := time.Now()
			req.Header.Set("Authorization", "Bearer "+string(token))
			d = append(d, time.Since(start))
		}
		d.report(b, "µs")
	})
}

// BenchmarkApplySigV4 measures the SigV4 example (canonical request, four key derivations and
// a signature in the host) with pooled instances.
func BenchmarkApplySigV4(b *testing.B) {
	h, _ := newTestHost(b)
	p := load(b, h, PluginConfig{Name: "aws", Path: guest(b, sigv4Guest), Hosts: patterns("*.amazonaws.com"),
		Secrets: map[string][]byte{"aws_secret_access_key": []byte("secret"), "aws_access_key_id": []byte("AKID")}})
	ctx := context.Background()
	req := newReq(b, "GET", "https://dynamodb.us-east-1.amazonaws.com/?Action=ListTables", "Content-Type: application/x-amz-json-1.0", "X-Amz-Date: 20250101T000000Z")
	var d durations
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := p.Apply(ctx, req); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	d.report(b, "µs")
}

// BenchmarkInstantiate measures starting one instance of a Go plugin (the Go runtime's
// initialization included), the cost that pooling avoids per request.
func BenchmarkInstantiate(b *testing.B) {
	h, _ := newTestHost(b)
	p := load(b, h, PluginConfig{Name: "bearer", Path: guest(b, bearerGuest), Secrets: map[string][]byte{"token": []byte("tok-123")}})
	ctx := context.Background()
	var d durations
	for i := 0; i < b.N; i++ {
		start := time.Now()
		in, err := p.instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
		in.mod.Close(ctx)
	}
	d.report(b, "µs")
}

// BenchmarkLoad measures loading a plugin (the bearer and SigV4 examples): "warm-cache" is a
// new Host (as at the start of a run) with the on-disk compilation cache already filled,
// loading the plugin and starting its first instance; "same-host" loads another plugin into a Host that has already
// loaded the module; "cold" compiles without any cache, the baseline.
func BenchmarkLoad(b *testing.B) {
	for _, g := range []string{bearerGuest, sigv4Guest} {
		b.Run(filepath.Base(g), func(b *testing.B) { benchmarkLoad(b, g) })
	}
}

func benchmarkLoad(b *testing.B, g string) {
	wasm := guest(b, g)
	dir := filepath.Join(testDir, "bench-cache")
	cfg := PluginConfig{Name: "aws", Path: wasm, Hosts: patterns("*.amazonaws.com"),
		Secrets: map[string][]byte{"aws_secret_access_key": []byte("x"), "aws_access_key_id": []byte("y")}}
	ctx := context.Background()
	// loadOnce loads the plugin into h and returns how long Load took; closing is not timed.
	loadOnce := func(b *testing.B, h *Host) time.Duration {
		start := time.Now()
		p, err := h.Load(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		p.Close(ctx)
		return d
	}
	// Fill the disk cache.
	h, err := NewHost(HostConfig{CacheDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	loadOnce(b, h)
	h.Close(ctx)

	b.Run("warm-cache", func(b *testing.B) {
		var d durations
		for i := 0; i < b.N; i++ {
			start := time.Now()
			h, err := NewHost(HostConfig{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(start)+loadOnce(b, h))
			h.Close(ctx)
		}
		d.report(b, "ms")
	})
	b.Run("same-host", func(b *testing.B) {
		h, err := NewHost(HostConfig{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close(ctx)
		loadOnce(b, h)
		var d durations
		for i := 0; i < b.N; i++ {
			d = append(d, loadOnce(b, h))
		}
		d.report(b, "ms")
	})
	b.Run("cold", func(b *testing.B) {
		var d durations
		for i := 0; i < b.N; i++ {
			h, err := NewHost(HostConfig{NoDiskCache: true})
			if err != nil {
				b.Fatal(err)
			}
			d = append(d, loadOnce(b, h))
			h.Close(ctx)
		}
		d.report(b, "ms")
	})
}
