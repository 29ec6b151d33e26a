package netproxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// getEcho GETs url and decodes the echo. hop says whether the proxy saw the response
// (plain HTTP) and so must have removed its hop-by-hop headers.
func getEcho(t *testing.T, c *http.Client, url string, hdr http.Header) echoInfo {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, bodyString(resp))
	}
	if strings.HasPrefix(url, "http:") && c.Transport.(*http.Transport).Proxy != nil &&
		(resp.Header.Get("X-Hop-Secret") != "" || resp.Header.Get("Keep-Alive") != "") {
		t.Errorf("hop-by-hop response headers reached the client: %v", resp.Header)
	}
	var info echoInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	return info
}

func TestHTTPForwardEndToEnd(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	c := e.httpClient()
	defer c.CloseIdleConnections()

	url := "http://allowed.test:" + port(up.http) + "/path?q=1"
	var reused []bool
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", url, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { reused = append(reused, ci.Reused) },
		}))
		req.Header.Set("Connection", "X-Private")
		req.Header.Set("X-Private", "hop")
		req.Header.Set("X-End-To-End", "kept")
		req.Header.Set("Te", "trailers")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var info echoInfo
		if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if info.Host != "allowed.test:"+port(up.http) || info.URI != "/path?q=1" {
			t.Errorf("upstream saw Host %q URI %q", info.Host, info.URI)
		}
		for _, h := range []string{"Proxy-Authorization", "X-Private", "Te", "Proxy-Connection", "Connection"} {
			if v := info.Header.Get(h); v != "" {
				t.Errorf("hop-by-hop header %s: %q reached the upstream", h, v)
			}
		}
		if info.Header.Get("X-End-To-End") != "kept" {
			t.Errorf("end-to-end header lost: %v", info.Header)
		}
	}
	if fmt.Sprint(reused) != "[false true true]" {
		t.Errorf("client connection reuse = %v, want keep-alive after the first request", reused)
	}
	decisions := 0
	for _, ev := range e.audit.events(t) {
		if ev["event"] == "decision" && ev["decision"] == "allow" && ev["host"] == "allowed.test" {
			decisions++
			if ev["rule"] != `network.allow "allowed.test"` || ev["proto"] != "http" || ev["method"] != "GET" ||
				!strings.HasPrefix(ev["addr"].(string), "127.0.0.1:") {
				t.Errorf("decision event %v", ev)
			}
		}
	}
	if decisions != 3 {
		t.Errorf("%d allow decisions audited, want one per request (3)", decisions)
	}
}

// TestKeepAliveDecidesEachRequest sends three requests on one client connection: the
// refused one in the middle must not poison or unlock the others.
func TestKeepAliveDecidesEachRequest(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	c := e.dial()
	br := bufio.NewReader(c)
	p := port(up.http)
	for i, tc := range []struct {
		host string
		want int
	}{{"allowed.test", 200}, {"denied.test", 403}, {"www.allowed.test", 200}, {"bad.allowed.test", 403}, {"allowed.test", 200}} {
		fmt.Fprintf(c, "GET http://%s:%s/ HTTP/1.1\r\nHost: %s:%s\r\n%s\r\n", tc.host, p, tc.host, p, authHeader(testToken))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body := bodyString(resp)
		if resp.StatusCode != tc.want {
			t.Fatalf("request %d to %s: %s, want %d: %s", i, tc.host, resp.Status, tc.want, body)
		}
		if resp.Close {
			t.Fatalf("request %d: the proxy closed the keep-alive connection", i)
		}
	}
}

func TestHTTPLargeBodiesAndChunked(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	c := e.httpClient()
	defer c.CloseIdleConnections()
	base := "http://allowed.test:" + port(up.http)

	const n = 48 << 20
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("upload chunked=%v", chunked), func(t *testing.T) {
			h := sha256.New()
			var body io.Reader = io.TeeReader(io.LimitReader(&patternReader{}, n), h)
			if chunked {
				body = struct{ io.Reader }{body} // unknown length: Go sends it chunked
			}
			req, _ := http.NewRequest("POST", base+"/", body)
			if !chunked {
				req.ContentLength = n
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var info echoInfo
			if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
				t.Fatal(err)
			}
			if info.BodyLen != n || info.BodySHA != hex.EncodeToString(h.Sum(nil)) {
				t.Errorf("upstream got %d bytes (sha %s), want %d", info.BodyLen, info.BodySHA, n)
			}
		})
		t.Run(fmt.Sprintf("download chunked=%v", chunked), func(t *testing.T) {
			url := fmt.Sprintf("%s/big?n=%d", base, n)
			if chunked {
				url += "&chunked=1"
			}
			resp, err := c.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if chunked != (resp.ContentLength < 0) {
				t.Errorf("ContentLength %d; chunked upstream %v", resp.ContentLength, chunked)
			}
			want := sha256.New()
			_, _ = io.Copy(want, io.LimitReader(&patternReader{}, n))
			got := sha256.New()
			m, err := io.Copy(got, resp.Body)
			if err != nil || m != n || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
				t.Errorf("downloaded %d bytes, err %v, hash match %v", m, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
			}
		})
	}
}

// TestHTTPStreaming proves that bodies stream both ways: the server's first event reaches
// the client while the server still holds the rest, and the server answers the first bytes
// of an upload while the client still holds the rest.
func TestHTTPStreaming(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	c := e.httpClient()
	defer c.CloseIdleConnections()
	base := "http://allowed.test:" + port(up.http)

	resp, err := c.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	up.releaseAll() // only now may the server send the rest
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if !strings.Contains(string(rest), "data: second") {
		t.Errorf("rest of stream %q", rest)
	}

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/upload-stream", pr)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := c.Do(req)
		if err != nil {
			t.Error(err)
			resp = nil
		}
		done <- resp
	}()
	_, _ = io.WriteString(pw, "hello")
	var r2 *http.Response
	select {
	case r2 = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the upload did not stream: no answer to its first bytes")
	}
	if r2 == nil {
		return
	}
	br = bufio.NewReader(r2.Body)
	if line, _ := br.ReadString('\n'); line != "got hello\n" {
		t.Errorf("first line %q", line)
	}
	_, _ = io.WriteString(pw, " world")
	pw.Close()
	if line, _ := br.ReadString('\n'); line != "then  world\n" {
		t.Errorf("second line %q", line)
	}
	r2.Body.Close()
}

func TestExpectContinue(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	base := "http://allowed.test:" + port(up.http)

	t.Run("go client", func(t *testing.T) {
		c := e.httpClient()
		defer c.CloseIdleConnections()
		got100 := false
		req, _ := http.NewRequest("POST", base+"/", strings.NewReader("payload"))
		req.Header.Set("Expect", "100-continue")
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			Got100Continue: func() { got100 = true },
		}))
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var info echoInfo
		_ = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if !got100 || info.BodyLen != 7 {
			t.Errorf("got 100 %v, body %d bytes", got100, info.BodyLen)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("took %v: the client waited out its expect timeout", d)
		}
	})
	t.Run("refused before the body", func(t *testing.T) {
		// The upstream answers 401 without 100 Continue; the client never sends the body.
		c := e.dial()
		fmt.Fprintf(c, "POST http://allowed.test:%s/ HTTP/1.1\r\nHost: allowed.test:%s\r\nExpect: 100-continue\r\nX-Reject: 1\r\nContent-Length: 5\r\n%s\r\n",
			port(up.http), port(up.http), authHeader(testToken))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 401 || !resp.Close {
			t.Errorf("got %s close=%v, want 401 and the connection closed", resp.Status, resp.Close)
		}
	})
}

func TestResponseTrailers(t *testing.T) {
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	c := e.httpClient()
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://allowed.test:" + port(up.http) + "/trailer")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "body" || resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("body %q trailer %v", b, resp.Trailer)
	}
}

func TestConnectHTTPS(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	c := e.httpClient()
	defer c.CloseIdleConnections()
	for i := 0; i < 2; i++ {
		info := getEcho(t, c, "https://allowed.test:"+port(up.https)+"/x", nil)
		if info.Header.Get("Proxy-Authorization") != "" || info.URI != "/x" {
			t.Errorf("upstream saw %+v", info)
		}
	}
	c.CloseIdleConnections()
	var sawClose bool
	for i := 0; i < 50 && !sawClose; i++ {
		for _, ev := range e.audit.events(t) {
			if ev["event"] == "close" && ev["proto"] == "connect" {
				sawClose = ev["bytes_up"].(float64) > 0 && ev["bytes_down"].(float64) > 0
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawClose {
		t.Errorf("no close event with byte counts: %v", e.audit.events(t))
	}
}

func TestConnectPortMustMatchRule(t *testing.T) {
	up := startUpstreams(t)
	cfg := testConfig()
	cfg.Allow = patterns("allowed.test:443")
	e := startProxy(t, cfg)
	resp := e.raw(fmt.Sprintf("CONNECT allowed.test:%s HTTP/1.1\r\n%s\r\n", port(up.https), authHeader(testToken)))
	if resp.StatusCode != 403 {
		t.Fatalf("got %s", resp.Status)
	}
	if b := resp.Header.Get("X-Cordon-Block"); !strings.Contains(b, `the rule "allowed.test:443" allows only port 443`) {
		t.Errorf("X-Cordon-Block %q", b)
	}
	if len(e.dialer.dialed()) != 0 {
		t.Errorf("dialed %v", e.dialer.dialed())
	}
}

func TestWebSocket(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	echo := func(t *testing.T, conn net.Conn, scheme, authority string) {
		t.Helper()
		cfg, err := websocket.NewConfig(scheme+"://"+authority+"/ws", "http://allowed.test/")
		if err != nil {
			t.Fatal(err)
		}
		var rw io.ReadWriteCloser = conn
		if scheme == "wss" {
			tc := tls.Client(conn, &tls.Config{RootCAs: testCerts().pool, ServerName: "allowed.test"})
			rw = tc
		}
		ws, err := websocket.NewClient(cfg, rw)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		for _, msg := range []string{"ping", strings.Repeat("x", 100000)} {
			if err := websocket.Message.Send(ws, msg); err != nil {
				t.Fatal(err)
			}
			// The echo server answers in as many frames as its reads return.
			var got string
			for len(got) < len(msg) {
				var part string
				if err := websocket.Message.Receive(ws, &part); err != nil {
					t.Fatal(err)
				}
				got += part
			}
			if got != msg {
				t.Fatalf("echo of %d bytes: got %d bytes", len(msg), len(got))
			}
		}
	}
	t.Run("ws over CONNECT", func(t *testing.T) {
		auth := "allowed.test:" + port(up.http)
		c, br := e.connect(auth)
		if br.Buffered() > 0 {
			t.Fatal("bytes after the CONNECT response")
		}
		echo(t, c, "ws", auth)
	})
	t.Run("wss over CONNECT", func(t *testing.T) {
		auth := "allowed.test:" + port(up.https)
		c, _ := e.connect(auth)
		echo(t, c, "wss", auth)
	})
	t.Run("ws over SOCKS5", func(t *testing.T) {
		c := socksConnect(t, e, "allowed.test", port(up.http), 0)
		echo(t, c, "ws", "allowed.test:"+port(up.http))
	})
	t.Run("plain HTTP upgrade", func(t *testing.T) {
		c := e.dial()
		fmt.Fprintf(c, "GET http://allowed.test:%s/upgrade HTTP/1.1\r\nHost: allowed.test:%s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n%s\r\n",
			port(up.http), port(up.http), authHeader(testToken))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" {
			t.Fatalf("%v %v", resp, err)
		}
		fmt.Fprint(c, "hello")
		got := make([]byte, 5)
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "hello" {
			t.Errorf("echo %q %v", got, err)
		}
	})
}

func TestSOCKS5EndToEnd(t *testing.T) {
	leakCheck(t)
	up := startUpstreams(t)
	e := startProxy(t, testConfig())
	c := e.socksClient()
	defer c.CloseIdleConnections()
	getEcho(t, c, "http://allowed.test:"+port(up.http)+"/", nil)
	getEcho(t, c, "https://www.allowed.test:"+port(up.https)+"/", nil)
	if up.http6 != nil {
		getEcho(t, c, "http://v6.allowed.test:"+port(up.http6)+"/", nil)
	}
}

func TestIPv6Destinations(t *testing.T) {
	up := startUpstreams(t)
	if up.http6 == nil {
		t.Skip("no IPv6 loopback on this machine")
	}
	cfg := testConfig()
	cfg.Allow = append(cfg.Allow, patterns("[::1]")...)
	e := startProxy(t, cfg)
	c := e.httpClient()
	defer c.CloseIdleConnections()
	getEcho(t, c, "http://v6.allowed.test:"+port(up.http6)+"/", nil)
	getEcho(t, c, "http://[::1]:"+port(up.http6)+"/", nil) // an IP literal named by a rule
	// SOCKS5 with an IPv6 address (ATYP 4), decided against the IP rule.
	conn := socksConnect(t, e, "::1", port(up.http6), 4)
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
}
