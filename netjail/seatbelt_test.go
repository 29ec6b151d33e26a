package netjail

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cordonsh/cordon/internal/sbpl"
)

func TestSeatbeltRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  SeatbeltConfig
		want []string // rules, as "action op... filter-text..."
	}{
		{"proxy only", SeatbeltConfig{ProxyPorts: []uint16{53124}}, []string{
			`allow network-outbound (remote tcp4 "localhost:53124")`,
			`allow system-socket (socket-domain AF_UNIX)`,
		}},
		{"routes", SeatbeltConfig{ProxyPorts: []uint16{1, 65535}}, []string{
			`allow network-outbound (remote tcp4 "localhost:1") (remote tcp4 "localhost:65535")`,
			`allow system-socket (socket-domain AF_UNIX)`,
		}},
		{"unix sockets", SeatbeltConfig{ProxyPorts: []uint16{2}, UnixSockets: []string{"/private/var/run/docker.sock", `/Users/me/my "agent".sock`}}, []string{
			`allow network-outbound (remote tcp4 "localhost:2")`,
			`allow system-socket (socket-domain AF_UNIX)`,
			`allow network-outbound (remote unix-socket (subpath "/private/var/run/docker.sock")) (remote unix-socket (subpath "/Users/me/my \"agent\".sock"))`,
		}},
		{"local bind", SeatbeltConfig{ProxyPorts: []uint16{3}, AllowLocalBind: true}, []string{
			`allow network-outbound (remote tcp4 "localhost:3")`,
			`allow system-socket (socket-domain AF_UNIX)`,
			`allow network-bind network-inbound (local ip "localhost:*")`,
			`allow network-outbound (remote ip "localhost:*")`,
		}},
		{"no network", SeatbeltConfig{}, []string{`allow system-socket (socket-domain AF_UNIX)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, err := SeatbeltRules(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := sbpl.Parse(text)
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			var got []string
			for _, n := range nodes {
				got = append(got, strings.TrimSuffix(strings.TrimPrefix(flatten(n), "("), ")"))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for _, n := range nodes {
				if n.Head() == "allow" && len(n.List) < 3 {
					t.Fatalf("an allow rule without filters: %s", flatten(n))
				}
			}
		})
	}
}

// flatten writes a rule on one line, strings quoted as the profile quotes them.
func flatten(n sbpl.Node) string {
	switch {
	case n.IsString:
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(n.Text) + `"`
	case !n.IsList:
		return n.Text
	}
	var parts []string
	for _, e := range n.List {
		parts = append(parts, flatten(e))
	}
	return "(" + strings.Join(parts, " ") + ")"
}

func TestSeatbeltRulesErrors(t *testing.T) {
	for _, cfg := range []SeatbeltConfig{
		{ProxyPorts: []uint16{0}},
		{UnixSockets: []string{"relative.sock"}},
		{UnixSockets: []string{"/a/../b.sock"}},
		{UnixSockets: []string{"/a\x00b"}},
	} {
		if _, err := SeatbeltRules(cfg); !errors.Is(err, ErrBadSeatbelt) {
			t.Errorf("%+v: %v, want ErrBadSeatbelt", cfg, err)
		}
	}
}

// FuzzSeatbeltUnixSocket checks that a socket path reads back as itself and cannot add a
// rule.
func FuzzSeatbeltUnixSocket(f *testing.F) {
	for _, s := range []string{"/a.sock", `/q"))(allow network*)(("`, "/new\nline", `/b\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !filepath.IsAbs(s) || filepath.Clean(s) != s || strings.IndexByte(s, 0) >= 0 {
			return
		}
		text, err := SeatbeltRules(SeatbeltConfig{ProxyPorts: []uint16{9}, UnixSockets: []string{s}})
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := sbpl.Parse(text)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if len(nodes) != 3 {
			t.Fatalf("%q: %d rules", s, len(nodes))
		}
		f := nodes[2].List[2]
		if f.Head() != "remote" || f.List[2].Head() != "subpath" || f.List[2].List[1].Text != s {
			t.Fatalf("%q reads back as %+v", s, f)
		}
	})
}
