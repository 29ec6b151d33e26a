package plugins

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSigV4Vectors runs the example SigV4 plugin against cases of AWS's published Signature
// Version 4 test suite (credentials AKIDEXAMPLE, region us-east-1, service "service",
// 2015-08-30T12:36:00Z) and the GetObject example of the S3 documentation. The request is
// built as the suite gives it, with the client's X-Amz-Date; the plugin must produce the
// published Authorization header exactly.
func TestSigV4Vectors(t *testing.T) {
	const (
		suiteAKID   = "AKIDEXAMPLE"
		suiteSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
		suiteScope  = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
		suiteDate   = "X-Amz-Date: 20150830T123600Z"
		suiteHost   = "https://example.amazonaws.com"
	)
	tests := []struct {
		name      string
		method    string
		url       string
		headers   []string
		body      string
		token     string // session token, if the case has one
		config    map[string]string
		akid      string
		secret    string
		signed    string
		signature string
		credScope string
	}{
		{name: "get-vanilla", method: "GET", url: suiteHost + "/", headers: []string{suiteDate},
			signed: "host;x-amz-date", signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{name: "get-vanilla-query-order-key-case", method: "GET", url: suiteHost + "/?Param2=value2&Param1=value1", headers: []string{suiteDate},
			signed: "host;x-amz-date", signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
		{name: "get-vanilla-query-order-value", method: "GET", url: suiteHost + "/?Param1=value2&Param1=value1", headers: []string{suiteDate},
			signed: "host;x-amz-date", signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
		{name: "get-vanilla-utf8-query", method: "GET", url: suiteHost + "/?%E1%88%B4=bar", headers: []string{suiteDate},
			signed: "host;x-amz-date", signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
		{name: "get-unreserved", method: "GET", url: suiteHost + "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", headers: []string{suiteDate},
			signed: "host;x-amz-date", signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
		{name: "get-slashes", method: "GET", url: suiteHost + "//example//", headers: []string{suiteDate},
			signed: "host;x-amz-date", signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
		{name: "get-header-value-trim", method: "GET", url: suiteHost + "/", headers: []string{suiteDate, "My-Header1:  value1", `My-Header2: "a   b   c"`},
			signed: "host;my-header1;my-header2;x-amz-date", signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
		{name: "get-header-value-order", method: "GET", url: suiteHost + "/", headers: []string{suiteDate, "My-Header1: value4", "My-Header1: value1", "My-Header1: value3", "My-Header1: value2"},
			signed: "host;my-header1;x-amz-date", signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
		{name: "post-x-www-form-urlencoded", method: "POST", url: suiteHost + "/", headers: []string{suiteDate, "Content-Type: application/x-www-form-urlencoded"}, body: "Param1=value1",
			signed: "content-type;host;x-amz-date", signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
		{name: "get-vanilla-with-session-token", method: "GET", url: suiteHost + "/", headers: []string{suiteDate, "X-Amz-Security-Token: client-placeholder"},
			token:  "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
			signed: "host;x-amz-date;x-amz-security-token", signature: "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"},
		{name: "replaces the client's signature", method: "GET", url: suiteHost + "/", headers: []string{suiteDate,
			"Authorization: AWS4-HMAC-SHA256 Credential=PLACEHOLDER/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000"},
			signed: "host;x-amz-date", signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		// S3 documentation, "Example: GET Object": region and service come from the host name.
		{name: "s3 GetObject", method: "GET", url: "https://examplebucket.s3.amazonaws.com/test.txt", headers: []string{
			"Range: bytes=0-9", "X-Amz-Content-Sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "X-Amz-Date: 20130524T000000Z"},
			config: map[string]string{}, akid: "AKIAIOSFODNN7EXAMPLE", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
			credScope: "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
			signed:    "host;range;x-amz-content-sha256;x-amz-date", signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
	}
	h, logs := newTestHost(t)
	wasm := guest(t, sigv4Guest)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			config := tc.config
			if config == nil {
				config = map[string]string{"region": "us-east-1", "service": "service"}
			}
			akid, secret, scope := tc.akid, tc.secret, tc.credScope
			if akid == "" {
				akid, secret, scope = suiteAKID, suiteSecret, suiteScope
			}
			secrets := map[string][]byte{"aws_access_key_id": []byte(akid), "aws_secret_access_key": []byte(secret)}
			if tc.token != "" {
				secrets["aws_session_token"] = []byte(tc.token)
				config["session_token_secret"] = "aws_session_token"
			}
			p := load(t, h, PluginConfig{Name: "aws", Path: wasm, Hosts: patterns("*.amazonaws.com"), Secrets: secrets, Config: config})
			defer p.Close(context.Background())
			req := newReq(t, tc.method, tc.url, tc.headers...)
			if tc.body != "" {
				req.Body = readCloser{strings.NewReader(tc.body), http.NoBody}
				req.ContentLength = int64(len(tc.body))
			}
			res, err := p.Apply(context.Background(), req)
			if err != nil {
				t.Fatalf("Apply: %v\nlog: %s", err, logs)
			}
			want := "AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=" + tc.signed + ", Signature=" + tc.signature
			if got := req.Header.Get("Authorization"); got != want {
				t.Fatalf("Authorization:\n got %s\nwant %s", got, want)
			}
			if tc.token != "" && req.Header.Get("X-Amz-Security-Token") != tc.token {
				t.Errorf("X-Amz-Security-Token = %q", req.Header.Get("X-Amz-Security-Token"))
			}
			// What cordon shows: the key id and the signature redacted.
			for _, c := range res.Changes {
				if c.Name != "Authorization" {
					continue
				}
				shown := strings.Join(c.After, "")
				if strings.Contains(shown, akid) || strings.Contains(shown, tc.signature) ||
					!strings.Contains(shown, "Credential=<secret aws_access_key_id>/") ||
					!strings.Contains(shown, "Signature=<signed with secret aws_secret_access_key>") {
					t.Errorf("Result shows %q", shown)
				}
			}
		})
	}
}

func TestSigV4NeedsItsSecrets(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Name: "aws", Path: guest(t, sigv4Guest), Hosts: patterns("*.amazonaws.com"),
		Secrets: map[string][]byte{"aws_secret_access_key": []byte("only-the-secret-key")}})
	req := newReq(t, "GET", "https://sts.amazonaws.com/")
	if _, err := p.Apply(context.Background(), req); err == nil || !strings.Contains(err.Error(), `secret "aws_access_key_id"`) {
		t.Fatalf("error %v", err)
	}
	if req.Header.Get("Authorization") != "" {
		t.Fatal("a request that failed to sign was changed")
	}
}

func TestBearerExample(t *testing.T) {
	h, _ := newTestHost(t)
	tests := []struct {
		name   string
		config map[string]string
		header string
		want   string
	}{
		{"defaults", nil, "Authorization", "Bearer tok-42"},
		{"custom header and format", map[string]string{"header": "X-Api-Key", "format": "key={secret}"}, "X-Api-Key", "key=tok-42"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := load(t, h, PluginConfig{Name: "bearer", Path: guest(t, bearerGuest), Config: tc.config, Secrets: map[string][]byte{"token": []byte("tok-42")}})
			req := newReq(t, "GET", "https://api.example.com/v1", tc.header+": client-sent-this")
			res, err := p.Apply(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Values(tc.header); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("%s = %q, want %q", tc.header, got, tc.want)
			}
			if len(res.Changes) != 1 || strings.Contains(res.Changes[0].After[0], "tok-42") || !strings.Contains(res.Changes[0].After[0], "<secret token>") {
				t.Fatalf("changes %+v", res.Changes)
			}
		})
	}
}

func TestGitHubReadOnlyExample(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Name: "github", Path: guest(t, githubGuest), Hosts: patterns("api.github.com"),
		Secrets: map[string][]byte{"github_token": []byte("ghp_example")}})
	for _, m := range []string{"GET", "HEAD"} {
		req := newReq(t, m, "https://api.github.com/repos/o/r")
		res, err := p.Apply(context.Background(), req)
		if err != nil || res.Deny != nil || req.Header.Get("Authorization") != "Bearer ghp_example" {
			t.Fatalf("%s: res %+v err %v headers %v", m, res, err, req.Header)
		}
	}
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		req := newReq(t, m, "https://api.github.com/repos/o/r/issues")
		res, err := p.Apply(context.Background(), req)
		if err != nil || res.Deny == nil || res.Deny.Status != 403 || !strings.Contains(res.Deny.Reason, "read-only") || !strings.Contains(res.Deny.Reason, m+" /repos/o/r/issues") {
			t.Fatalf("%s: res %+v err %v", m, res, err)
		}
		if req.Header.Get("Authorization") != "" {
			t.Fatalf("%s: the token was added to a denied request", m)
		}
	}
}

// TestSigV4UsesTheClock: without an X-Amz-Date from the client, the plugin dates the request
// from the real clock (WASI's real-time clock is wired to the host's).
func TestSigV4UsesTheClock(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Name: "aws", Path: guest(t, sigv4Guest), Hosts: patterns("*.amazonaws.com"),
		Secrets: map[string][]byte{"aws_secret_access_key": []byte("k"), "aws_access_key_id": []byte("AKID")}})
	before := time.Now().UTC()
	req := newReq(t, "GET", "https://dynamodb.eu-west-3.amazonaws.com/")
	if _, err := p.Apply(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	got, err := time.Parse("20060102T150405Z", req.Header.Get("X-Amz-Date"))
	if err != nil || got.Before(before.Truncate(time.Second)) || got.After(time.Now().UTC()) {
		t.Fatalf("X-Amz-Date = %q (%v), want about %v", req.Header.Get("X-Amz-Date"), err, before)
	}
	if a := req.Header.Get("Authorization"); !strings.Contains(a, "/"+got.Format("20060102")+"/eu-west-3/dynamodb/aws4_request") {
		t.Fatalf("Authorization = %q", a)
	}
}

// TestGuideExample runs the plugin docs/plugins.md walks through (a copy of its code is in
// testdata/guests/apikey; TestGuideExampleMatchesDoc keeps them equal).
func TestGuideExample(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Name: "apikey", Path: guest(t, "testdata/guests/apikey"), Secrets: map[string][]byte{"api_key": []byte("test-key-123")}})
	req := newReq(t, "GET", "https://api.example.com/v1/items")
	res, err := p.Apply(context.Background(), req)
	if err != nil || req.Header.Get("X-Api-Key") != "test-key-123" || len(res.Changes) != 1 || res.Changes[0].After[0] != "<secret api_key>" {
		t.Fatalf("GET: %+v %v %v", res, err, req.Header)
	}
	res, err = p.Apply(context.Background(), newReq(t, "DELETE", "https://api.example.com/v1/items/7"))
	if err != nil || res.Deny == nil || res.Deny.Status != 403 || res.Deny.Reason != "deleting is not allowed from the sandbox" {
		t.Fatalf("DELETE: %+v %v", res, err)
	}
}

func TestGuideExampleMatchesDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("testdata/guests/apikey/main.go")
	if err != nil {
		t.Fatal(err)
	}
	code := strings.Replace(string(src), "// Command apikey is the example of docs/plugins.md, kept here so that a test proves it works.\n", "", 1)
	if !strings.Contains(string(doc), "```go\n"+code+"```") {
		t.Fatal("docs/plugins.md's example differs from testdata/guests/apikey/main.go")
	}
}

func TestSigV4HostScope(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Name: "aws", Path: guest(t, sigv4Guest), Hosts: patterns("*.amazonaws.com"),
		Secrets: map[string][]byte{"aws_secret_access_key": []byte("k"), "aws_access_key_id": []byte("AKID")}})
	tests := []struct{ url, scope string }{
		{"https://sts.amazonaws.com/", "/us-east-1/sts/"},
		{"https://dynamodb.eu-west-3.amazonaws.com/", "/eu-west-3/dynamodb/"},
		{"https://bucket.s3.us-west-2.amazonaws.com/key", "/us-west-2/s3/"},
		{"https://s3.dualstack.ap-south-1.amazonaws.com/b/k", "/ap-south-1/s3/"},
		{"https://s3-eu-west-1.amazonaws.com/b/k", "/eu-west-1/s3/"},
		{"https://kms-fips.us-gov-west-1.amazonaws.com/", "/us-gov-west-1/kms/"},
	}
	for _, tc := range tests {
		req := newReq(t, "GET", tc.url, "X-Amz-Date: 20250101T000000Z")
		if _, err := p.Apply(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if a := req.Header.Get("Authorization"); !strings.Contains(a, "/20250101"+tc.scope+"aws4_request") {
			t.Errorf("%s: Authorization = %q, want scope %s", tc.url, a, tc.scope)
		}
	}
}
