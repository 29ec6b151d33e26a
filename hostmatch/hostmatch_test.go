package hostmatch

import (
	"errors"
	"testing"
)

func TestParseAndMatch(t *testing.T) {
	tests := []struct {
		pattern string
		host    string
		port    uint16
		want    bool
	}{
		{"example.com", "example.com", 443, true},
		{"example.com", "www.example.com", 443, false},
		{"example.com", "example.com.evil.com", 443, false},
		{"example.com", "evilexample.com", 443, false},
		{"Example.COM.", "example.com", 80, true},
		{"*.example.com", "a.example.com", 443, true},
		{"*.example.com", "a.b.example.com", 443, true},
		{"*.example.com", "example.com", 443, false},
		{"*.example.com", "aexample.com", 443, false},
		{"*.example.com", "example.com.evil.com", 443, false},
		{"example.com:443", "example.com", 443, true},
		{"example.com:443", "example.com", 80, false},
		{"example.com:443", "example.com", 0, false},
		{"*.github.com:443", "api.github.com", 443, true},
		{"*.github.com:443", "api.github.com", 22, false},
		{"*", "anything.example", 1, true},
		{"*", "192.0.2.1", 1, false},
		{"192.0.2.7", "192.0.2.7", 80, true},
		{"192.0.2.7", "192.0.2.8", 80, false},
		{"192.0.2.7:8080", "192.0.2.7", 80, false},
		{"[2001:db8::1]", "2001:db8::1", 443, true},
		{"2001:db8::1", "2001:db8::1", 443, true},
		{"[2001:db8::1]:443", "2001:db8:0::1", 443, true},
		{"[2001:db8::1]:443", "2001:db8::1", 80, false},
		{"example.com", "192.0.2.7", 443, false},
		{"bücher.example", "xn--bcher-kva.example", 443, true},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", 443, true},
		{"*.bücher.example", "www.xn--bcher-kva.example", 443, true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.host, func(t *testing.T) {
			p, err := Parse(tt.pattern)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.pattern, err)
			}
			host, err := Canonical(tt.host)
			if err != nil {
				t.Fatalf("Canonical(%q): %v", tt.host, err)
			}
			if got := p.Match(host, tt.port); got != tt.want {
				t.Errorf("%q.Match(%q, %d) = %v, want %v", tt.pattern, host, tt.port, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		pattern string
		want    error
	}{
		{"", ErrEmpty},
		{"example.com:0", ErrBadPort},
		{"example.com:65536", ErrBadPort},
		{"example.com:https", ErrBadPort},
		{"example.com:", ErrBadPort},
		{"a.*.example.com", ErrBadWild},
		{"*example.com", ErrBadWild},
		{"*.192.0.2.1", ErrBadWild},
		{"evil.com#@allowed.com", ErrBadHost},
		{"user@example.com", ErrBadHost},
		{"https://example.com", ErrBadPort},
		{"example.com/path", ErrBadHost},
		{"exa mple.com", ErrBadHost},
		{"a..b", ErrBadHost},
		{".", ErrBadHost},
		{"-a.com", ErrBadHost},
		{"[2001:db8::1", ErrBadHost},
		{"[2001:db8::1]x", ErrBadHost},
		{"127.1", ErrBadHost},
		{"[fe80::1%eth0]", ErrBadHost},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := Parse(tt.pattern)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.pattern, err, tt.want)
			}
		})
	}
}

func TestCheckAllow(t *testing.T) {
	tests := []struct {
		pattern string
		broad   bool
	}{
		{"*", true},
		{"*:443", true},
		{"*.com", true},
		{"*.co.uk", true},
		{"*.github.io", true},
		{"*.internal", true},
		{"*.example.com", false},
		{"*.example.co.uk", false},
		{"com", false},
		{"example.com", false},
		{"192.0.2.1", false},
	}
	for _, tt := range tests {
		err := MustParse(tt.pattern).CheckAllow()
		if got := errors.Is(err, ErrTooBroad); got != tt.broad {
			t.Errorf("CheckAllow(%q) = %v, want broad=%v", tt.pattern, err, tt.broad)
		}
	}
}

func TestCanonical(t *testing.T) {
	good := map[string]string{
		"EXAMPLE.com.":     "example.com",
		"Bücher.Example":   "xn--bcher-kva.example",
		"[::ffff:1.2.3.4]": "1.2.3.4",
		"2001:DB8::1":      "2001:db8::1",
		"localhost":        "localhost",
	}
	for in, want := range good {
		got, err := Canonical(in)
		if err != nil || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "..", "a b", "evil.com#@allowed.com", "a/b", "0x7f.1", "127.0.0.1.", "ex\x00ample.com"} {
		if got, err := Canonical(in); err == nil && in != "127.0.0.1." {
			t.Errorf("Canonical(%q) = %q, want error", in, got)
		}
	}
}

// FuzzParse checks that Parse never panics, that a parsed pattern round-trips through its
// canonical form, and that a name pattern matches its own canonical name.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"example.com", "*.example.com:443", "*", "[::1]:80", "bücher.example", "a..b", "*.co.uk", "1.2.3.4"} {
		f.Add(s, "www.example.com", uint16(443))
	}
	f.Fuzz(func(t *testing.T, pattern, host string, port uint16) {
		p, err := Parse(pattern)
		if err != nil {
			if p.Match(host, port) {
				t.Fatalf("invalid pattern %q matched", pattern)
			}
			return
		}
		_ = p.CheckAllow()
		if ch, err := Canonical(host); err == nil {
			again, err := Canonical(ch)
			if err != nil || again != ch {
				t.Fatalf("Canonical not idempotent: %q -> %q -> %q, %v", host, ch, again, err)
			}
			_ = p.Match(ch, port)
		}
		if !p.wildcard && !p.addr.IsValid() && p.port == 0 && !p.Match(p.name, 1) {
			t.Fatalf("%q does not match its own name %q", pattern, p.name)
		}
		if p.wildcard && p.name != "" && p.Match(p.name, p.port) {
			t.Fatalf("wildcard %q matched its bare suffix", pattern)
		}
	})
}
