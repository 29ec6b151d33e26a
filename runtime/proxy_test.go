package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cordonsh/cordon/netproxy"
	"github.com/cordonsh/cordon/policy"
)

func TestProxyConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cordon.toml")
	data := "version = 1\npresets = [\"default\"]\n[network]\nallow = [\"example.com:443\"]\nallow_private = [\"10.0.0.0/8\"]\n" +
		"[proxy]\nidle_timeout = \"1m\"\n[audit]\nlog = \"audit.jsonl\"\n"
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(policy.Options{File: file, Flags: policy.Flags{AllowDomains: []string{"x.test"}},
		Env: policy.Env{Home: dir, Cwd: dir}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ProxyConfig(p, nil)
	if len(cfg.Allow) != 2 || len(cfg.AllowPrivate) != 1 || cfg.IdleTimeout.String() != "1m0s" ||
		cfg.PolicySource != file || len(cfg.Token) != 32 {
		t.Errorf("config %+v", cfg)
	}
	if other := ProxyConfig(p, nil); other.Token == cfg.Token {
		t.Error("the token is not fresh")
	}
	if _, err := netproxy.New(cfg); err != nil {
		t.Errorf("New: %v", err)
	}
	f, err := OpenAuditLog(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Mode().Perm() != 0o600 || f.Name() != filepath.Join(dir, "audit.jsonl") {
		t.Errorf("audit log %s mode %v", f.Name(), st.Mode())
	}
}

func TestPolicySource(t *testing.T) {
	for _, tc := range []struct {
		sources []string
		want    string
	}{
		{nil, ""},
		{[]string{"preset default"}, ""},
		{[]string{"preset default", "flags"}, "flags"},
		{[]string{"preset default", "/p/cordon.toml", "flags"}, "/p/cordon.toml"},
		{[]string{"/p/srt.json"}, ""},
	} {
		if got := policySource(&policy.Policy{Sources: tc.sources}); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.sources, got, tc.want)
		}
	}
}

func TestWriteBlockedSummary(t *testing.T) {
	var b bytes.Buffer
	WriteBlockedSummary(&b, nil)
	if b.Len() != 0 {
		t.Errorf("summary of nothing: %q", b.String())
	}
	WriteBlockedSummary(&b, []netproxy.Blocked{
		{Host: "a.test:443", Rule: "not in network.allow", Fix: `add "a.test:443" to network.allow in x`, Count: 2},
		{Host: "b.test:80", Rule: "network.allow_private", Count: 1},
	})
	for _, want := range []string{"blocked 3 requests to 2 destinations", "a.test:443  2× not in network.allow", `to allow it: add "a.test:443"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary %q lacks %q", b.String(), want)
		}
	}
}
