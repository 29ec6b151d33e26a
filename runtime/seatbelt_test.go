package runtime

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cordonsh/cordon/fsjail"
	"github.com/cordonsh/cordon/internal/sbpl"
	"github.com/cordonsh/cordon/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/seatbelt instead of comparing")

// goldenFS holds the golden profiles, embedded so that the test binary runs anywhere (the
// escape suite runs it outside the source tree).
//
//go:embed testdata/seatbelt
var goldenFS embed.FS

// macResolver resolves paths as a Mac would, for the golden profiles: /tmp, /var and /etc
// are symbolic links into /private, and so are a few paths of the fixtures.
func macResolver(p string) string {
	links := [][2]string{
		{"/tmp", "/private/tmp"}, {"/var", "/private/var"}, {"/etc", "/private/etc"},
		{"/opt/homebrew/bin/cordon", "/opt/homebrew/Cellar/cordon/1.0.0/bin/cordon"},
		{"/private/etc/localtime", "/private/var/db/timezone/zoneinfo/Europe/Paris"},
		{"/Users/me/.aws", "/Volumes/Vault/aws"},
	}
	for range 8 {
		changed := false
		for _, l := range links {
			if p == l[0] || strings.HasPrefix(p, l[0]+"/") {
				p, changed = l[1]+strings.TrimPrefix(p, l[0]), true
			}
		}
		if !changed {
			break
		}
	}
	return p
}

// macExpand stands for the expansion of patterns when the run starts: one pattern of the
// hostile fixture has a match, reached through a symbolic link.
func macExpand(pattern, cwd string, limit int) ([]string, error) {
	if pattern == "/Users/me/src/*/secrets/[a-z]?.pem" {
		return []string{"/Users/me/src/app/secrets/k1.pem"}, nil
	}
	return nil, nil
}

var goldenEnv = policy.Env{Home: "/Users/me", Cwd: "/Users/me/src/app"}

func goldenInputs(p *policy.Policy) seatbeltInputs {
	return seatbeltInputs{
		Policy:     p,
		Dir:        goldenEnv.Cwd,
		TmpDir:     "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/cordon-1234",
		Canary:     "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/cordon-1234/.cordon-canary",
		Terminal:   "/dev/ttys004",
		Helper:     "/opt/homebrew/bin/cordon",
		ProxyPorts: []uint16{49152},
		Tag:        "cordon-0123456789abcdef",
		Resolve:    macResolver,
		Expand:     macExpand,
	}
}

// hostileTOML names paths with everything that could break a profile: quotes,
// backslashes, newlines, parentheses, semicolons, regular expression metacharacters,
// spaces, non-ASCII letters, and patterns.
const hostileTOML = `version = 1
presets = ["default"]

[filesystem]
allow_read = ["/", "~/Library/Application Support/Code (Insiders)"]
allow_write = [".", "/tmp/build out", "~/Документы/проект", "~/café/naïve ☕"]
deny_read = [
  "~/we\"ird\"",
  "~/back\\slash\\",
  "~/new\nline",
  "~/paren) (allow default) (",
  "~/semi;colon",
  "~/.config/a.b+c(d){e}|f^g$h",
  "~/**/.env.*",
  "~/src/*/secrets/[a-z]?.pem",
  "~/odd/\\[literal\\]*.key",
  "~/.aws",
]
deny_write = ["~/src/app/[Mm]akefile", "/etc/hosts"]

[network]
allow_unix_sockets = ["/var/run/agent \"1\".sock"]
allow_local_bind = true
`

func goldenPolicies(t *testing.T) map[string]*policy.Policy {
	t.Helper()
	out := map[string]*policy.Policy{}
	for _, preset := range []string{"default", "claude", "ci"} {
		p, err := policy.Load(policy.Options{Presets: []string{preset}, Env: goldenEnv})
		if err != nil {
			t.Fatal(err)
		}
		out[preset] = p
	}
	p, err := policy.Parse("hostile.toml", []byte(hostileTOML), goldenEnv)
	if err != nil {
		t.Fatal(err)
	}
	out["hostile"] = p
	return out
}

// TestSeatbeltGolden compares the profiles of a few policies with the files under
// testdata/seatbelt. After a deliberate change, rewrite them with
//
//	go test ./runtime -run TestSeatbeltGolden -update
//
// and read the diff: these files are what sandbox-exec gets on a Mac.
func TestSeatbeltGolden(t *testing.T) {
	pols := goldenPolicies(t)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range pols {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			in := goldenInputs(pols[name])
			profile, err := seatbeltProfile(in)
			if err != nil {
				t.Fatal(err)
			}
			checkSeatbeltProfile(t, profile, in)
			golden := "testdata/seatbelt/" + name + ".sb"
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(profile), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := goldenFS.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (create it with -update)", err)
			}
			if !bytes.Equal(want, []byte(profile)) {
				t.Fatalf("profile differs from %s at line %d; if the change is meant, rerun with -update and review the diff", golden, firstDiffLine(string(want), profile))
			}
		})
	}
	t.Run("no stale golden files", func(t *testing.T) {
		files, _ := fs.Glob(goldenFS, "testdata/seatbelt/*.sb")
		for _, f := range files {
			if _, ok := pols[strings.TrimSuffix(filepath.Base(f), ".sb")]; !ok {
				t.Errorf("%s belongs to no policy of the test", f)
			}
		}
	})
}

func firstDiffLine(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// checkSeatbeltProfile checks what every profile must hold whatever the policy.
func checkSeatbeltProfile(t *testing.T, profile string, in seatbeltInputs) {
	t.Helper()
	nodes, err := sbpl.Parse(profile)
	if err != nil {
		t.Fatalf("profile does not parse: %v", err)
	}
	if nodes[0].Head() != "version" || nodes[1].Head() != "deny" || nodes[1].List[1].Text != "default" {
		t.Fatal("the profile does not start with (version 1) (deny default ...)")
	}
	// Every denial carries the tag; the last rule is the canary's.
	for _, n := range nodes[1:] {
		if n.Head() != "deny" {
			continue
		}
		last := n.List[len(n.List)-1]
		if last.Head() != "with" || last.List[2].Text != in.Tag {
			t.Fatalf("a deny rule at byte %d has no message", n.Offset)
		}
	}
	last := nodes[len(nodes)-1]
	if last.Head() != "deny" || last.List[2].Head() != "literal" || last.List[2].List[1].Text != macResolver(in.Canary) {
		t.Fatal("the canary is not denied last")
	}
	// The network: the proxy's port, over IPv4 TCP, and loopback only.
	var remotes []string
	for _, n := range nodes {
		if n.Head() != "allow" || n.List[1].Text != "network-outbound" {
			continue
		}
		for _, f := range n.List[2:] {
			if f.Head() == "remote" && !f.List[2].IsList {
				remotes = append(remotes, f.List[1].Text+" "+f.List[2].Text)
			}
		}
	}
	want := []string{"tcp4 localhost:49152"}
	if in.Policy.Network.AllowLocalBind {
		want = append(want, "ip localhost:*")
	}
	if !slices.Equal(remotes, want) {
		t.Fatalf("network destinations %q, want %q", remotes, want)
	}
	// No mach service that would give the command the keychain, TLS checks with network
	// fetches, DNS or a way to start programs outside the sandbox; no sysctl that reads
	// another process's arguments and environment.
	for _, forbidden := range []string{"com.apple.SecurityServer", "com.apple.securityd", "com.apple.trustd", "com.apple.dnssd", "com.apple.coreservices.launchservicesd", "com.apple.lsd", "kern.procargs"} {
		if strings.Contains(profile, `"`+forbidden) {
			t.Errorf("the profile names %s", forbidden)
		}
	}
}

func TestSeatbeltProfileDenials(t *testing.T) {
	pols := goldenPolicies(t)
	profile, err := seatbeltProfile(goldenInputs(pols["hostile"]))
	if err != nil {
		t.Fatal(err)
	}
	nodes, _ := sbpl.Parse(profile)
	values := func(action, op, kind string) []string {
		var out []string
		for _, n := range nodes {
			if n.Head() != action || n.List[1].Text != op {
				continue
			}
			for _, f := range n.List[2:] {
				if f.Head() == kind {
					out = append(out, f.List[1].Text)
				}
			}
		}
		return out
	}
	reads := values("deny", "file-read*", "subpath")
	for _, want := range []string{
		"/Users/me/we\"ird\"", "/Users/me/back\\slash\\", "/Users/me/new\nline", "/Users/me/paren) (allow default) (",
		"/Users/me/.config/a.b+c(d){e}|f^g$h", "/Users/me/.ssh", "/Users/me/src/app/.env",
		"/Users/me/src/app/secrets/k1.pem",     // the pattern's match when the run starts
		"/Volumes/Vault/aws", "/Users/me/.aws", // a symbolic link: its target and itself
	} {
		if !slices.Contains(reads, want) {
			t.Errorf("%q is not read-denied", want)
		}
	}
	writes := values("deny", "file-write*", "subpath")
	for _, want := range []string{"/Users/me/src/app/.git/hooks", "/Users/me/.bashrc", "/private/etc/hosts", "/etc/hosts"} {
		if !slices.Contains(writes, want) {
			t.Errorf("%q is not write-denied", want)
		}
	}
	allows := values("allow", "file-write*", "subpath")
	for _, want := range []string{"/Users/me/src/app", "/private/tmp/build out", "/Users/me/Документы/проект", "/private/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/cordon-1234", "/dev/ttys004"} {
		if !slices.Contains(allows, want) {
			t.Errorf("%q is not writable", want)
		}
	}
	if !slices.Contains(values("allow", "file-read*", "subpath"), "/opt/homebrew/Cellar/cordon/1.0.0/bin/cordon") {
		t.Error("the helper cannot be executed")
	}
}

// FuzzSeatbeltProfile puts an arbitrary path in every list of a policy and checks that the
// profile is refused or keeps the outline of a plain path's: no rule added, removed or
// broken.
func FuzzSeatbeltProfile(f *testing.F) {
	for _, s := range []string{"/a/b", `/x"y`, `/z\`, "/n\nl", "/p)(allow default)(", "/g/**/*.x", "/é/ü", `/q"))(allow network*)(("`} {
		f.Add(s)
	}
	outline := func(profile string) []string {
		nodes, err := sbpl.Parse(profile)
		if err != nil {
			return nil
		}
		var out []string
		for _, n := range nodes {
			h := n.Head()
			for _, e := range n.List[1:] {
				if !e.IsList && !e.IsString {
					h += " " + e.Text
				}
			}
			out = append(out, h)
		}
		return out
	}
	build := func(p string) (string, error) {
		pol := &policy.Policy{}
		pol.Filesystem.AllowRead = []string{"/", p}
		pol.Filesystem.AllowWrite = []string{p}
		pol.Filesystem.DenyRead = []string{p}
		pol.Filesystem.DenyWrite = []string{p}
		pol.Network.AllowUnixSockets = []string{p}
		return seatbeltProfile(goldenInputs(pol))
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || strings.HasPrefix(p, "/dev") || strings.HasPrefix(p, "/private") {
			return
		}
		profile, err := build(p)
		if err != nil {
			if errors.Is(err, fsjail.ErrBadPath) || errors.Is(err, fsjail.ErrBadPattern) {
				return
			}
			t.Fatalf("%q: %v", p, err)
		}
		plain := "/a/b"
		if filepath.Dir(p) == "/" {
			plain = "/a"
		}
		if fsjail.IsPattern(p) {
			plain = "/a/*"
		}
		want, err := build(plain)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := outline(profile), outline(want); !slices.Equal(got, want) {
			t.Fatalf("%q: outline\n%q\nwant\n%q", p, got, want)
		}
	})
}

func TestCheckProfile(t *testing.T) {
	for _, tc := range []struct {
		profile string
		ok      bool
	}{
		{"(version 1)\n(deny default)\n(allow file-read* (subpath \"/a\"))", true},
		{"(version 1)\n(allow process-fork)", true},
		{"(version 1)\n(allow file-read*)", false},
		{"(version 1)\n(allow network*)", false},
		{"(version 1)\n(allow file-read* (subpath \"/a\")", false},
		{"(version 1)\n(import \"system.sb\")", false},
		{"(deny default)\n(version 1)", false},
	} {
		if err := checkProfile(tc.profile); (err == nil) != tc.ok {
			t.Errorf("checkProfile(%q) = %v, want ok %v", tc.profile, err, tc.ok)
		}
	}
}

func TestExplainSeatbelt(t *testing.T) {
	mac := Support{OS: "darwin", Arch: "arm64", SandboxExec: "/usr/bin/sandbox-exec", ProcessLimit: "RLIMIT_NPROC"}
	pol := func(edit func(*policy.Policy)) *policy.Policy {
		p := &policy.Policy{Process: policy.Process{MaxProcesses: policy.DefaultMaxProcesses}}
		edit(p)
		return p
	}
	t.Run("auto", func(t *testing.T) {
		pl := Explain(pol(func(*policy.Policy) {}), mac)
		if pl.Mode != policy.ModeSeatbelt || pl.Refused != "" || len(pl.NotEnforced) != 0 || len(pl.Weaker) == 0 {
			t.Fatalf("%+v", pl)
		}
	})
	t.Run("fallback means seatbelt", func(t *testing.T) {
		if pl := Explain(pol(func(p *policy.Policy) { p.Sandbox.Mode = policy.ModeFallback }), mac); pl.Mode != policy.ModeSeatbelt {
			t.Fatalf("%+v", pl)
		}
	})
	t.Run("namespace is refused", func(t *testing.T) {
		pl := Explain(pol(func(p *policy.Policy) { p.Sandbox.Mode = policy.ModeNamespace }), mac)
		if pl.Refused == "" || pl.Mode != "" {
			t.Fatalf("%+v", pl)
		}
	})
	t.Run("no sandbox-exec is refused, best effort or not", func(t *testing.T) {
		s := mac
		s.SandboxExec, s.SandboxExecError = "", "no such file"
		pl := Explain(pol(func(p *policy.Policy) { p.Sandbox.BestEffort = true }), s)
		if !strings.Contains(pl.Refused, "no such file") {
			t.Fatalf("%+v", pl)
		}
	})
	t.Run("root cannot be limited", func(t *testing.T) {
		s := mac
		s.Root, s.ProcessLimit = true, ""
		if pl := Explain(pol(func(*policy.Policy) {}), s); len(pl.NotEnforced) != 1 {
			t.Fatalf("%+v", pl)
		}
		if pl := Explain(pol(func(p *policy.Policy) { p.Process.MaxProcesses = 0 }), s); len(pl.NotEnforced) != 0 {
			t.Fatalf("%+v", pl)
		}
	})
	t.Run("local bind is named", func(t *testing.T) {
		pl := Explain(pol(func(p *policy.Policy) { p.Network.AllowLocalBind = true }), mac)
		if !slices.ContainsFunc(pl.Weaker, func(s string) bool { return strings.Contains(s, "allow_local_bind") }) {
			t.Fatalf("%+v", pl)
		}
	})
	t.Run("Linux support is explained as Linux", func(t *testing.T) {
		pl := Explain(pol(func(*policy.Policy) {}), Support{OS: "linux", UserNamespaces: true, Landlock: 7, Seccomp: true, ProcessLimit: "RLIMIT_NPROC"})
		if pl.Mode != policy.ModeNamespace {
			t.Fatalf("%+v", pl)
		}
	})
}

// BenchmarkSeatbeltProfile measures writing and checking the profile of the claude preset,
// which every macOS run of `cordon -- claude` pays before sandbox-exec starts.
func BenchmarkSeatbeltProfile(b *testing.B) {
	p, err := policy.Load(policy.Options{Presets: []string{"claude"}, Env: goldenEnv})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		resolve func(string) string
	}{
		{"fake-resolver", macResolver},
		{"resolver", nil}, // fsjail.ResolvePath on this machine's filesystem
	} {
		b.Run(tc.name, func(b *testing.B) {
			in := goldenInputs(p)
			in.Resolve = tc.resolve
			b.ReportAllocs()
			for b.Loop() {
				if _, err := seatbeltProfile(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestMissingPaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	list := []string{filepath.Join(dir, ".git"), filepath.Join(dir, ".envrc"), filepath.Join(dir, ".claude/commands"), filepath.Join(dir, "*.pem")}
	missing := missingPaths(list)
	if want := list[1:3]; !slices.Equal(missing, want) {
		t.Fatalf("missing %q, want %q", missing, want)
	}
	if got := existingPaths(missing); len(got) != 0 {
		t.Fatalf("existing before the run: %q", got)
	}
	// The run creates .claude/commands (its parent did not exist, so only a warning tells).
	if err := os.MkdirAll(list[2], 0o755); err != nil {
		t.Fatal(err)
	}
	if got := existingPaths(missing); !slices.Equal(got, list[2:3]) {
		t.Fatalf("created during the run: %q, want %q", got, list[2:3])
	}
}
