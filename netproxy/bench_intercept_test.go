package netproxy

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// median returns the median of ds in microseconds.
func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Microsecond)
}

// BenchmarkInterceptLatency measures small keep-alive HTTPS GETs through the proxy, one at a
// time, alternating in the same run between an opaque CONNECT tunnel (TLS end to end with
// the upstream) and an intercepted one (TLS to the proxy, a credential added, TLS again to
// the upstream). It reports each path's median latency and the difference: what
// interception adds per request.
func BenchmarkInterceptLatency(b *testing.B) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{testCerts().cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes that tests fail on purpose
	srv.StartTLS()
	defer srv.Close()
	cfg := credConfig("0123456789abcdef0123456789abcdef")
	e := startProxy(b, cfg)
	e.p.audit.w = nil
	opaque, intercepted := e.interceptClient(false), e.interceptClient(false)
	defer opaque.CloseIdleConnections()
	defer intercepted.CloseIdleConnections()
	get := func(c *http.Client, url string) time.Duration {
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start)
	}
	opaqueURL := "https://other.allowed.test:" + port(srv) + "/"
	interceptURL := "https://api.allowed.test:" + port(srv) + "/"
	get(opaque, opaqueURL) // connections and leaf certificates exist before the timer starts
	get(intercepted, interceptURL)
	var o, in []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o = append(o, get(opaque, opaqueURL))
		in = append(in, get(intercepted, interceptURL))
	}
	b.StopTimer()
	mo, mi := median(o), median(in)
	b.ReportMetric(mo, "opaque-µs")
	b.ReportMetric(mi, "intercepted-µs")
	b.ReportMetric(mi-mo, "added-µs")
	b.ReportMetric(mi/mo, "ratio")
}

// BenchmarkCredentialRule measures what one credential rule costs a request: matching the
// host and replacing the header, on a request with a typical header set.
func BenchmarkCredentialRule(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(map[int]string{1: "1 rule", 10: "10 rules"}[n], func(b *testing.B) {
			cfg := credConfig("0123456789abcdef0123456789abcdef")
			for i := 1; i < n; i++ {
				c := cfg.Credentials[0]
				c.Hosts = patterns("other" + string(rune('a'+i)) + ".allowed.test")
				cfg.Credentials = append(cfg.Credentials, c)
			}
			p, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			req, _ := http.NewRequest("GET", "https://api.allowed.test/v1/x", nil)
			for _, h := range []string{"Accept", "User-Agent", "Content-Type", "X-Request-Id", "Authorization"} {
				req.Header.Set(h, "value")
			}
			dst := target{host: "api.allowed.test", port: 443}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var t touched
				if f := p.applyCredentials(req.Context(), req, dst, true, nil, &t); f != nil {
					b.Fatal(f.err)
				}
			}
		})
	}
}
