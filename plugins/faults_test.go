package plugins

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFaultsFailOneRequest makes one loaded plugin misbehave in every way a Go guest can and
// checks that each fault fails only its own request, closed (the request keeps none of the
// plugin's changes), with an error naming the plugin, and that the next request is served.
func TestFaultsFailOneRequest(t *testing.T) {
	h, logs := newTestHost(t)
	p := load(t, h, PluginConfig{
		Name:    "faulty",
		Path:    guest(t, faultyGuest),
		Secrets: map[string][]byte{"canary": []byte("granted-secret-value")},
		Timeout: 200 * time.Millisecond,
	})
	tests := []struct {
		mode     string
		sentinel error
		want     string
	}{
		{"panic", ErrFault, "panic: boom"},
		{"loop", ErrTimeout, "ran longer than 200ms"},
		{"membomb", ErrMemoryLimit, "limit 32 MiB"},
		{"exit", ErrFault, "exited with code 3"},
		{"fail", ErrFailed, "test plugin says no"},
		{"ungranted", ErrSecretNotGranted, `secret "not_granted"`},
		{"no-such-mode", ErrFailed, "unknown mode"},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			req := newReq(t, "GET", "https://api.example.com/", "X-Test-Mode: "+tc.mode, "Authorization: client-value")
			before := req.Header.Clone()
			start := time.Now()
			res, err := p.Apply(context.Background(), req)
			if err == nil {
				t.Fatalf("Apply succeeded: %+v", res)
			}
			if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `plugin "faulty"`) {
				t.Fatalf("error %q: want %v naming the plugin and saying %q", err, tc.sentinel, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the fault took %v to report", d)
			}
			if !equalHeaders(req.Header, before) {
				t.Errorf("a failed request was changed: %v, was %v", req.Header, before)
			}
			// The host keeps serving: the next request through the same plugin works.
			ok := newReq(t, "GET", "https://api.example.com/", "X-Test-Mode: ok")
			if _, err := p.Apply(context.Background(), ok); err != nil || ok.Header.Get("X-Ok") != "1" {
				t.Fatalf("request after the fault: err %v, headers %v", err, ok.Header)
			}
		})
	}
	if strings.Contains(logs.String(), "granted-secret-value") {
		t.Error("a secret appeared in the log")
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// TestRawFaults covers faults only a hand-written module can produce: a wasm trap, a
// pointer outside memory, memory.grow until it fails. Each call fails promptly and cleanly,
// again and again, and another plugin on the same host keeps working.
func TestRawFaults(t *testing.T) {
	h, _ := newTestHost(t)
	good := load(t, h, PluginConfig{Name: "good", Wasm: rawModule([]string{"header_set"}, setRawOK)})
	tests := []struct {
		name     string
		wasm     []byte
		sentinel error
		want     string
	}{
		{"trap", rawModule(nil, func(m *wmod, idx map[string]uint32) [][]byte {
			return [][]byte{opUnreachable}
		}), ErrFault, "trapped: unreachable"},
		{"endless loop", rawModule(nil, func(m *wmod, idx map[string]uint32) [][]byte {
			return [][]byte{opLoop, opBr0, opEnd, i32c(0)}
		}), ErrTimeout, "ran longer than"},
		{"memory bomb", rawModule(nil, func(m *wmod, idx map[string]uint32) [][]byte {
			return [][]byte{opLoop, i32c(1), opMemGrow, i32c(-1), opI32Ne, opBrIf0, opEnd, opUnreachable}
		}), ErrMemoryLimit, "limit 4 MiB"},
		{"pointer outside memory", rawModule([]string{"header_set"}, func(m *wmod, idx map[string]uint32) [][]byte {
			return [][]byte{i32c(-256), i32c(100), i32c(0), i32c(1), wcall(idx["header_set"]), opDrop, i32c(0)}
		}), ErrFault, "outside its memory"},
		{"output buffer outside memory", rawModule([]string{"request_method"}, func(m *wmod, idx map[string]uint32) [][]byte {
			return [][]byte{i32c(65530), i32c(100), wcall(idx["request_method"]), opDrop, i32c(0)}
		}), ErrFault, "outside its memory"},
		{"hook returns non-zero", rawModule(nil, func(m *wmod, idx map[string]uint32) [][]byte {
			return [][]byte{i32c(7)}
		}), ErrFailed, "cordon_on_request returned 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := load(t, h, PluginConfig{Name: "raw", Wasm: tc.wasm, Timeout: 50 * time.Millisecond, MemoryLimit: 4 << 20})
			for i := 0; i < 3; i++ {
				_, err := p.Apply(context.Background(), newReq(t, "GET", "https://api.example.com/"))
				if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("call %d: error %v, want %v saying %q", i, err, tc.sentinel, tc.want)
				}
			}
			req := newReq(t, "GET", "https://api.example.com/")
			if _, err := good.Apply(context.Background(), req); err != nil || req.Header.Get("X-Raw") != "ok" {
				t.Fatalf("the other plugin: err %v, headers %v", err, req.Header)
			}
		})
	}
}

// TestConcurrentRequests sends 100 requests at once through one plugin.
func TestConcurrentRequests(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Path: guest(t, bearerGuest), Secrets: map[string][]byte{"token": []byte("tok-123")}, MaxInstances: 4})
	const n = 100
	var wg sync.WaitGroup
	var failures atomic.Int32
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := newReq(t, "GET", "https://api.example.com/")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := p.Apply(ctx, req); err != nil {
				failures.Add(1)
				errs <- err
				return
			}
			if got := req.Header.Get("Authorization"); got != "Bearer tok-123" {
				failures.Add(1)
				errs <- errors.New("Authorization = " + got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if live := len(p.pool.slots); live > 4 {
		t.Errorf("%d instances live, limit 4", live)
	}
}

// TestWaitingForAnInstanceRespectsContext: with every instance busy, a call gives up when
// its context ends instead of waiting forever.
func TestWaitingForAnInstanceRespectsContext(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Wasm: rawModule(nil, func(m *wmod, idx map[string]uint32) [][]byte {
		return [][]byte{opLoop, opBr0, opEnd, i32c(0)}
	}), MaxInstances: 1, Timeout: 500 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := p.Apply(context.Background(), newReq(t, "GET", "https://api.example.com/"))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Apply(ctx, newReq(t, "GET", "https://api.example.com/"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for a free instance") {
		t.Fatalf("second call: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Fatalf("first call: %v", err)
	}
}

// TestCloseWithCallsInFlight closes a plugin while guests are running and while calls wait
// for an instance: every call returns (an error), and nothing crashes.
func TestCloseWithCallsInFlight(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Path: guest(t, faultyGuest), MaxInstances: 2, Timeout: 300 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Apply(context.Background(), newReq(t, "GET", "https://api.example.com/", "X-Test-Mode: loop"))
			errs <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrClosed) {
			t.Errorf("call: %v, want a timeout or ErrClosed", err)
		}
	}
}
