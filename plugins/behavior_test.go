package plugins

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestCanarySecretStaysInTheHost gives a plugin a random secret and has it try every way the
// ABI offers to see it: read back the header it set from the secret, list all headers, make
// an HMAC with it and print the result to the log, stderr, a deny reason, an error and a
// panic. The secret must reach the outgoing request and nothing else: not the plugin's
// memory, the logs, the errors or the Result. The HMAC the plugin legitimately gets must be
// redacted everywhere except the header it was put in.
func TestCanarySecretStaysInTheHost(t *testing.T) {
	canary := "canary-" + rand.Text()
	mac := hmac.New(sha256.New, []byte(canary))
	mac.Write([]byte("data"))
	sig := hex.EncodeToString(mac.Sum(nil))

	h, logs := newTestHost(t)
	p := load(t, h, PluginConfig{Name: "nosy", Path: guest(t, faultyGuest), Secrets: map[string][]byte{"canary": []byte(canary)}})

	var everything strings.Builder // all the plugin could make visible outside the request
	checkMemory := func(t *testing.T) {
		t.Helper()
		mems := guestMemories(p)
		if len(mems) == 0 {
			t.Fatal("no idle instance to inspect")
		}
		for i, m := range mems {
			if bytes.Contains(m, []byte(canary)) {
				t.Errorf("instance %d's memory holds the secret", i)
			}
		}
	}
	check := func(where, s string) {
		t.Helper()
		everything.WriteString(s)
		if strings.Contains(s, canary) {
			t.Errorf("the secret appears in %s: %q", where, s)
		}
		if strings.Contains(s, sig) || strings.Contains(s, strings.ToUpper(sig)) {
			t.Errorf("the secret-derived HMAC appears in %s: %q", where, s)
		}
	}

	t.Run("allowed", func(t *testing.T) {
		req := newReq(t, "GET", "https://api.example.com/", "X-Test-Mode: canary")
		res, err := p.Apply(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get("Authorization"); got != "Bearer "+canary {
			t.Fatalf("the secret did not reach the request: Authorization %q", got)
		}
		if got := req.Header.Values("X-Two"); len(got) != 1 || got[0] != "k={"+canary+"}" {
			t.Fatalf("X-Two = %q", got)
		}
		// What the plugin saw when it read the headers back.
		seen := req.Header.Get("X-Seen")
		check("what the plugin read", seen)
		if !strings.Contains(seen, "Bearer {secret:canary} | k={{secret:canary}}") {
			t.Errorf("the plugin should read the template back: %q", seen)
		}
		// The plugin did get the HMAC (that is its purpose), and put it in a header.
		if req.Header.Get("X-Sig") != sig {
			t.Fatalf("X-Sig = %q, want the HMAC %q", req.Header.Get("X-Sig"), sig)
		}
		var shown strings.Builder
		for _, c := range res.Changes {
			shown.WriteString(c.Name + ": " + strings.Join(c.After, ",") + "\n")
		}
		check("the Result", shown.String())
		for _, want := range []string{"Authorization: Bearer <secret canary>", "X-Sig: <signed with secret canary>"} {
			if !strings.Contains(shown.String(), want) {
				t.Errorf("Result should show %q:\n%s", want, shown.String())
			}
		}
		checkMemory(t)
	})
	for _, then := range []string{"deny", "fail", "panic"} {
		t.Run(then, func(t *testing.T) {
			req := newReq(t, "GET", "https://api.example.com/", "X-Test-Mode: canary", "X-Then: "+then)
			res, err := p.Apply(context.Background(), req)
			if then == "deny" {
				if err != nil || res.Deny == nil {
					t.Fatalf("res %+v err %v", res, err)
				}
				check("the deny reason", res.Deny.Reason)
				if res.Deny.Reason != "sig=<signed with secret canary>" {
					t.Errorf("deny reason %q", res.Deny.Reason)
				}
				if req.Header.Get("Authorization") != "" {
					t.Error("a denied request kept the secret header")
				}
				checkMemory(t)
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			check("the error", err.Error())
			if !strings.Contains(err.Error(), "sig=<signed with secret canary>") {
				t.Errorf("error %q should show the redacted HMAC", err)
			}
			if req.Header.Get("Authorization") != "" {
				t.Error("a failed request kept the secret header")
			}
		})
	}
	logged := logs.String()
	check("the log", logged)
	if !strings.Contains(logged, "sig=<signed with secret canary>") {
		t.Errorf("the log should show the redacted HMAC:\n%s", logged)
	}
	// The checks above would have caught a leak: the canary is really there to find.
	if !strings.Contains("Bearer "+canary, canary) || everything.Len() == 0 {
		t.Fatal("the test saw nothing")
	}
}

// TestDerivedKeysStayInTheHost runs the SigV4 plugin and checks that no key of the derivation
// chain ("AWS4"+secret, kDate, kRegion, kService, kSigning) is in the plugin's memory.
func TestDerivedKeysStayInTheHost(t *testing.T) {
	secret := "sk-" + rand.Text()
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Name: "aws", Path: guest(t, sigv4Guest), Hosts: patterns("*.amazonaws.com"),
		Secrets: map[string][]byte{"aws_secret_access_key": []byte(secret), "aws_access_key_id": []byte("AKIDCANARY")}})
	req := newReq(t, "GET", "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15", "X-Amz-Date: 20250101T000000Z")
	if _, err := p.Apply(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	keys := [][]byte{[]byte(secret), []byte("AWS4" + secret), []byte("AKIDCANARY")}
	k := []byte("AWS4" + secret)
	for _, part := range []string{"20250101", "us-east-1", "sts", "aws4_request"} {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(part))
		k = m.Sum(nil)
		keys = append(keys, k)
	}
	for i, mem := range guestMemories(p) {
		for j, key := range keys {
			if bytes.Contains(mem, key) {
				t.Errorf("instance %d's memory holds key %d of the chain", i, j)
			}
		}
	}
	if !strings.Contains(req.Header.Get("Authorization"), "Credential=AKIDCANARY/20250101/us-east-1/sts/aws4_request") {
		t.Fatalf("Authorization = %q", req.Header.Get("Authorization"))
	}
}

func TestRequestView(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Path: guest(t, faultyGuest), Config: map[string]string{"greeting": "hello"}})
	req := newReq(t, "POST", "https://API.Example.com:8443/a%20b/c?x=1&y=%2F",
		"X-Test-Mode: echo", "X-In: one", "X-In: two", "Proxy-Authorization: Basic cordon-token", "X-Remove-Me: bye")
	res, err := p.Apply(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"X-Method": "POST", "X-Scheme": "https", "X-Host": "api.example.com", "X-Port": "8443",
		"X-Path": "/a%20b/c", "X-Query": "x=1&y=%2F", "X-Greeting": "hello", "X-Multi": "one|two",
		"X-Hidden": "", "X-Host-Header": "API.Example.com:8443",
		"X-Names": "Host,X-Host,X-In,X-Method,X-Path,X-Port,X-Query,X-Remove-Me,X-Scheme,X-Test-Mode",
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, ok := req.Header["X-Remove-Me"]; ok {
		t.Error("X-Remove-Me was not removed")
	}
	var removed bool
	for _, c := range res.Changes {
		if c.Name == "X-Remove-Me" && len(c.After) == 0 && c.Before[0] == "bye" {
			removed = true
		}
	}
	if !removed {
		t.Errorf("Changes do not show the removal: %+v", res.Changes)
	}
}

func TestDenyAndForbidden(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Path: guest(t, faultyGuest), Secrets: map[string][]byte{"canary": []byte("x-secret")}})
	req := newReq(t, "GET", "https://api.example.com/", "X-Test-Mode: deny")
	res, err := p.Apply(context.Background(), req)
	if err != nil || res.Deny == nil || res.Deny.Status != 451 || res.Deny.Reason != "denied by test plugin" {
		t.Fatalf("deny: %+v %v", res, err)
	}
	req = newReq(t, "GET", "https://api.example.com/", "X-Test-Mode: forbidden")
	if _, err := p.Apply(context.Background(), req); err != nil || req.Header.Get("X-Ok") != "forbidden-checked" {
		t.Fatalf("forbidden: %v %v", err, req.Header)
	}
}

func TestHostBinding(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Path: guest(t, faultyGuest), Hosts: patterns("api.example.com"), Secrets: map[string][]byte{"canary": []byte("x-secret")}})
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"other host", func() *http.Request { return newReq(t, "GET", "https://evil.example.net/", "X-Test-Mode: secret") }},
		{"subdomain", func() *http.Request { return newReq(t, "GET", "https://x.api.example.com/", "X-Test-Mode: secret") }},
		{"Host header elsewhere", func() *http.Request {
			r := newReq(t, "GET", "https://api.example.com/", "X-Test-Mode: secret")
			r.Host = "evil.example.net"
			return r
		}},
		{"other scheme", func() *http.Request { return newReq(t, "GET", "ftp://api.example.com/", "X-Test-Mode: secret") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			_, err := p.Apply(context.Background(), req)
			if !errors.Is(err, ErrHostNotBound) {
				t.Fatalf("error %v, want ErrHostNotBound", err)
			}
			if req.Header.Get("Authorization") != "" {
				t.Fatal("the secret reached an unbound host")
			}
		})
	}
	t.Run("plain HTTP", func(t *testing.T) {
		req := newReq(t, "GET", "http://api.example.com/", "X-Test-Mode: secret")
		if _, err := p.Apply(context.Background(), req); !errors.Is(err, ErrInsecureSecret) || req.Header.Get("Authorization") != "" {
			t.Fatalf("error %v, headers %v", err, req.Header)
		}
		p2 := load(t, h, PluginConfig{Path: guest(t, faultyGuest), Hosts: patterns("api.example.com"), AllowHTTP: true, Secrets: map[string][]byte{"canary": []byte("x-secret")}})
		if _, err := p2.Apply(context.Background(), req); err != nil || req.Header.Get("Authorization") != "Bearer x-secret" {
			t.Fatalf("with AllowHTTP: error %v, headers %v", err, req.Header)
		}
	})
}

func TestBodyHash(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Path: guest(t, faultyGuest), MaxBodyBytes: 1024})
	for _, n := range []int{0, 13, 1024, 1025, 100000} {
		body := bytes.Repeat([]byte("b"), n)
		req, _ := http.NewRequest("POST", "https://api.example.com/", bytes.NewReader(body))
		if n == 100000 {
			req.ContentLength = -1 // unknown length: the host must read to find out
		}
		req.Header.Set("X-Test-Mode", "body")
		if _, err := p.Apply(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(body)
		want := hex.EncodeToString(sum[:])
		if n > 1024 {
			want = "error: sdk: over a host limit"
		}
		if got := req.Header.Get("X-Body"); got != want {
			t.Errorf("%d bytes: X-Body = %q, want %q", n, got, want)
		}
		if req.Body != nil {
			got, _ := io.ReadAll(req.Body)
			if !bytes.Equal(got, body) {
				t.Errorf("%d bytes: the body changed (%d bytes now)", n, len(got))
			}
		}
	}
}

func TestLogRateLimit(t *testing.T) {
	h, logs := newTestHost(t)
	p := load(t, h, PluginConfig{Path: guest(t, faultyGuest)})
	if _, err := p.Apply(context.Background(), newReq(t, "GET", "https://api.example.com/", "X-Test-Mode: log-flood")); err != nil {
		t.Fatal(err)
	}
	n := strings.Count(logs.String(), `"source":"log"`)
	if n < 10 || n > logBurst+5 {
		t.Errorf("%d of 1000 lines logged, want about %d", n, logBurst)
	}
}

func TestScrubForms(t *testing.T) {
	p := &Plugin{secrets: map[string][]byte{"k": []byte("hunter2-secret")}}
	c := &call{p: p}
	b := []byte("0123456789abcdef0123456789abcdef")
	c.addDerived(b, "signed with", []string{"k"})
	for _, form := range []string{hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), string(b)} {
		if got := c.scrub("x " + form + " y"); got != "x <signed with secret k> y" {
			t.Errorf("scrub(%q) = %q", form, got)
		}
	}
	if got := c.scrub("pw=hunter2-secret"); got != "pw=<secret k>" {
		t.Errorf("scrub = %q", got)
	}
}
