package netproxy

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// startRoute serves route name of e's proxy on a new loopback listener and returns its URL.
func (e *env) startRoute(name string) string {
	e.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.p.ServeRoute(name, l) }()
	e.t.Cleanup(func() {
		_ = e.p.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			e.t.Errorf("ServeRoute returned %v, want ErrClosed", err)
		}
	})
	return "http://" + l.Addr().String()
}

// sseServer sends n events, pause apart, and records when it sent each.
func sseServer(t *testing.T, n int, pause time.Duration) (*httptest.Server, chan time.Time) {
	sent := make(chan time.Time, n)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/base/v1/events" {
			http.Error(w, "wrong path "+r.URL.Path, http.StatusNotFound)
			return
		}
		if got := r.Header.Values("X-Api-Key"); len(got) != 1 || !strings.HasPrefix(got[0], "cordon-canary-") {
			http.Error(w, fmt.Sprintf("key %q", got), http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i := 0; i < n; i++ {
			if i > 0 {
				time.Sleep(pause)
			}
			fmt.Fprintf(w, "event: n\ndata: %d\n\n", i)
			w.(http.Flusher).Flush()
			sent <- time.Now()
		}
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{testCerts().cert}}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes that tests fail on purpose
	s.StartTLS()
	t.Cleanup(s.Close)
	return s, sent
}

func TestRouteStreamsEvents(t *testing.T) {
	leakCheck(t)
	secret := canary(t)
	const n, pause = 4, 300 * time.Millisecond
	up, sent := sseServer(t, n, pause)
	cfg := credConfig(secret)
	cfg.Credentials = nil
	cfg.Routes = []Route{{
		Name:       "api",
		URL:        "https://api.allowed.test:" + port(up) + "/base/",
		Credential: &Credential{Name: `upstream "api"`, Header: "x-api-key", Value: secret},
	}}
	e := startProxy(t, cfg)
	base := e.startRoute("api")

	req, _ := http.NewRequest("GET", base+"/v1/events", nil)
	req.Header.Set("X-API-Key", "cordon-placeholder")
	req.Header.Set("x-api-key", "cordon-placeholder")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", resp.Status, bodyString(resp))
	}
	br := bufio.NewReader(resp.Body)
	for i := 0; i < n; i++ {
		var ev []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if line == "\n" {
				break
			}
			ev = append(ev, strings.TrimSpace(line))
		}
		got := time.Now()
		at := <-sent
		if strings.Join(ev, "|") != fmt.Sprintf("event: n|data: %d", i) {
			t.Errorf("event %d: %q", i, ev)
		}
		// Each event arrives as it is sent, not when the next one (a pause later) pushes it
		// out of a buffer.
		if lag := got.Sub(at); lag > pause/2 {
			t.Errorf("event %d arrived %s after it was sent", i, lag)
		}
	}
	_, _ = io.Copy(io.Discard, br)
	resp.Body.Close()
	waitAudit(t, e, func(ev map[string]any) bool {
		return ev["event"] == "request" && ev["proto"] == "route" && ev["route"] == "api" &&
			fmt.Sprint(ev["credentials"]) == `[upstream "api"]` && ev["status"] == float64(200)
	})
}

func TestRouteForwarding(t *testing.T) {
	leakCheck(t)
	secret := canary(t)
	up := startUpstreams(t)
	cfg := credConfig(secret)
	cfg.Routes = []Route{
		{Name: "tls", URL: "https://api.allowed.test:" + port(up.https) + "/prefix",
			Credential: &Credential{Name: `upstream "tls"`, Header: "Authorization", Value: "Bearer " + secret}},
		{Name: "token", URL: "https://other.allowed.test:" + port(up.https), PathToken: "tok123"},
		{Name: "plain", URL: "http://other.allowed.test:" + port(up.http),
			Credential: &Credential{Name: `upstream "plain"`, Header: "X-Key", Value: secret}},
		{Name: "denied", URL: "https://bad.allowed.test:" + port(up.https)},
		{Name: "down", URL: "https://other.allowed.test:1",
			Credential: &Credential{Name: `upstream "down"`, Header: "X-Key", Value: secret}},
	}
	e := startProxy(t, cfg)
	urls := map[string]string{}
	for _, r := range cfg.Routes {
		urls[r.Name] = e.startRoute(r.Name)
	}
	get := func(u string, h ...string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", u, nil)
		for _, kv := range h {
			k, v, _ := strings.Cut(kv, ": ")
			req.Header.Add(k, v)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, bodyString(resp)
	}
	echo := func(body string) echoInfo {
		var info echoInfo
		if err := json.Unmarshal([]byte(body), &info); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		return info
	}

	resp, body := get(urls["tls"]+"/v1/a%2Fb?x=1", "authorization: Bearer placeholder", "Proxy-Authorization: Basic x")
	info := echo(body)
	if resp.StatusCode != 200 || info.URI != "/prefix/v1/a%2Fb?x=1" || info.Host != "api.allowed.test:"+port(up.https) {
		t.Errorf("tls route: %s, upstream saw %s %s", resp.Status, info.Host, info.URI)
	}
	if got := info.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+secret {
		t.Errorf("tls route: Authorization %q", got)
	}
	if info.Header.Get("Proxy-Authorization") != "" {
		t.Error("Proxy-Authorization was forwarded")
	}

	resp, body = get(urls["token"] + "/v1/x")
	if resp.StatusCode != 403 || strings.Contains(body, "tok123") {
		t.Errorf("route without its token: %s %q", resp.Status, body)
	}
	resp, body = get(urls["token"] + "/tok123/v1/x")
	if info := echo(body); resp.StatusCode != 200 || info.URI != "/v1/x" {
		t.Errorf("route with its token: %s %s", resp.Status, info.URI)
	}

	resp, body = get(urls["plain"] + "/p")
	if info := echo(body); resp.StatusCode != 200 || info.Header.Get("X-Key") != secret {
		t.Errorf("plain route: %s key %q", resp.Status, info.Header.Get("X-Key"))
	}

	resp, body = get(urls["denied"] + "/")
	if resp.StatusCode != 403 || !strings.Contains(body, "network.deny") {
		t.Errorf("denied route: %s %q", resp.Status, body)
	}

	resp, body = get(urls["down"] + "/")
	if resp.StatusCode != 502 || !strings.Contains(body, "refused") || strings.Contains(body, secret) {
		t.Errorf("unreachable route: %s %q", resp.Status, body)
	}
	for _, v := range resp.Header {
		if strings.Contains(strings.Join(v, ""), secret) {
			t.Error("an error header holds the secret")
		}
	}
	if strings.Contains(e.audit.text(), secret) {
		t.Error("the audit log holds the secret")
	}
	if _, err := New(Config{Token: "x", Routes: []Route{{Name: "a", URL: "ftp://x"}}}); !errors.Is(err, ErrConfig) {
		t.Errorf("ftp route: %v", err)
	}
	if err := e.p.ServeRoute("nope", newClosedListener()); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown route: %v", err)
	}
}

// waitAudit waits for an audit event that match accepts: request events are written when
// the response has been relayed, a moment after the client has it.
func waitAudit(t *testing.T, e *env, match func(map[string]any) bool) {
	t.Helper()
	waitAuditN(t, e, 1, match)
}

// waitAuditN waits for n audit events that match accepts.
func waitAuditN(t *testing.T, e *env, n int, match func(map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		found := 0
		for _, ev := range e.audit.events(t) {
			if match(ev) {
				found++
			}
		}
		if found >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching audit event in:\n%s", e.audit.text())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newClosedListener() net.Listener {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	return l
}

func TestCloseEndsInterceptedAndRoutes(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	cfg := credConfig(canary(t))
	cfg.Routes = []Route{{Name: "r", URL: "https://api.allowed.test:" + port(up.https)}}
	cfg.Audit = &syncBuffer{}
	cfg.Dialer = &recordingDialer{}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	rl, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 2)
	go func() { served <- p.Serve(l) }()
	go func() { served <- p.ServeRoute("r", rl) }()
	e := &env{t: t, p: p, addr: l.Addr().String()}

	// A stream held open in an intercepted tunnel, one on the route, and an idle
	// intercepted keep-alive connection.
	c := e.interceptClient(true)
	resp, err := c.Get("https://api.allowed.test:" + port(up.https) + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	rresp, err := http.Get("http://" + rl.Addr().String() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	idle := e.interceptClient(false)
	getEcho(t, idle, "https://api.allowed.test:"+port(up.https)+"/", nil)

	done := make(chan struct{})
	go func() { _ = p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	for i := 0; i < 2; i++ {
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve/ServeRoute: %v", err)
		}
	}
	for _, r := range []*http.Response{resp, rresp} {
		_, err := io.ReadAll(r.Body)
		if err == nil {
			t.Error("a stream ended cleanly although the proxy closed in the middle")
		}
		r.Body.Close()
	}
	c.CloseIdleConnections()
	idle.CloseIdleConnections()
	up.releaseAll()
}
