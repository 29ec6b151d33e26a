package fsjail

import (
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cordonsh/cordon/internal/sbpl"
)

// fakeResolver resolves paths as a Mac would: /tmp, /var and /etc are symbolic links into
// /private, and links lists more.
func fakeResolver(links map[string]string) func(string) string {
	all := map[string]string{"/tmp": "/private/tmp", "/var": "/private/var", "/etc": "/private/etc"}
	for k, v := range links {
		all[k] = v
	}
	return func(p string) string {
		for i := 0; i < 8; i++ { // links may point at links
			changed := false
			for from, to := range all {
				if p == from || strings.HasPrefix(p, from+"/") {
					p = to + strings.TrimPrefix(p, from)
					changed = true
				}
			}
			if !changed {
				break
			}
		}
		return p
	}
}

func noExpand(string, string, int) ([]string, error) { return nil, nil }

func TestQuoteSBPL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"/Users/me", `"/Users/me"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{`\"`, `"\\\""`},
		{`end\`, `"end\\"`},
		{"new\nline", "\"new\nline\""},
		{"tab\there", "\"tab\there\""},
		{`\n is not a newline`, `"\\n is not a newline"`},
		{`\x41 \101`, `"\\x41 \\101"`},
		{"paren) (deny default)", `"paren) (deny default)"`},
		{"; not a comment", `"; not a comment"`},
		{`#"raw"`, `"#\"raw\""`},
		{"Café ☕ 日本", `"Café ☕ 日本"`},
		{"with space", `"with space"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got := QuoteSBPL(tc.in)
			if got != tc.want {
				t.Fatalf("QuoteSBPL(%q) = %s, want %s", tc.in, got, tc.want)
			}
			checkQuotedRoundTrip(t, tc.in)
		})
	}
}

// checkQuotedRoundTrip proves that a quoted string, inside a filter, reads back as itself
// and stays one string: nothing in it ends the literal or the list.
func checkQuotedRoundTrip(t *testing.T, s string) {
	t.Helper()
	src := "(allow file-read* (subpath " + QuoteSBPL(s) + "))\n(deny default)"
	nodes, err := sbpl.Parse(src)
	if err != nil {
		t.Fatalf("profile with %q does not parse: %v\n%s", s, err, src)
	}
	if len(nodes) != 2 || nodes[0].Head() != "allow" || nodes[1].Head() != "deny" || len(nodes[0].List) != 3 {
		t.Fatalf("profile with %q has another structure: %+v", s, nodes)
	}
	f := nodes[0].List[2]
	if f.Head() != "subpath" || len(f.List) != 2 || !f.List[1].IsString || f.List[1].Text != s {
		t.Fatalf("filter reads back as %+v, want (subpath %q)", f, s)
	}
}

func FuzzQuoteSBPL(f *testing.F) {
	for _, s := range []string{"", "/a", `"`, `\`, `\"`, "\\\n", `\x41`, `\101`, ")(", ";", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			return // a path never holds NUL; filterForm refuses it
		}
		checkQuotedRoundTrip(t, s)
	})
}

func TestRegexLiteral(t *testing.T) {
	for _, tc := range []struct {
		in, exact, folded string
	}{
		{"/a.b", `/a\.b`, `/[aA]\.[bB]`},
		{"x+y*(z)?", `x\+y\*\(z\)\?`, `[xX]\+[yY]\*\([zZ]\)\?`},
		{"[1]{2}|^$", `\[1\]\{2\}\|\^\$`, `\[1\]\{2\}\|\^\$`},
		{`back\slash`, `back\\slash`, `[bB][aA][cC][kK]\\[sS][lL][aA][sS][hH]`},
		{"Café", "Café", "[cC][aA][fF]é"},
		{"a b-c_d~e", "a b-c_d~e", "[aA] [bB]-[cC]_[dD]~[eE]"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := regexLiteral(tc.in, false); got != tc.exact {
				t.Errorf("exact: %q, want %q", got, tc.exact)
			}
			if got := regexLiteral(tc.in, true); got != tc.folded {
				t.Errorf("folded: %q, want %q", got, tc.folded)
			}
		})
	}
}

// swapASCIICase swaps the case of every ASCII letter.
func swapASCIICase(s string) string {
	b := []byte(s)
	for i, c := range b {
		if isLetter(c) {
			b[i] = c ^ 0x20
		}
	}
	return string(b)
}

func FuzzRegexLiteral(f *testing.F) {
	for _, s := range []string{"/Users/me/.ssh", `a.b*c+d?e(f)g[h]i{j}k|l^m$n\o`, "日本/Ω", "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return
		}
		exact := regexp.MustCompile("^" + regexLiteral(s, false) + "$")
		if !exact.MatchString(s) || exact.MatchString(s+"x") || (s != "" && exact.MatchString(s[1:])) {
			t.Fatalf("exact expression for %q: %s", s, exact)
		}
		folded := regexp.MustCompile("^" + regexLiteral(s, true) + "$")
		if !folded.MatchString(s) || !folded.MatchString(swapASCIICase(s)) || folded.MatchString(s+"x") {
			t.Fatalf("folded expression for %q: %s", s, folded)
		}
	})
}

func TestGlobRegexes(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		want    string // the expression for a match itself; the second adds "/" for beneath
		err     bool
	}{
		{pattern: "/p/*.pem", want: `^/[pP]/[^/]*\.[pP][eE][mM]$`},
		{pattern: "/p/**/.env", want: `^/[pP](/[^/]+)*/\.[eE][nN][vV]$`},
		{pattern: "/p/**", want: `^/[pP](/[^/]+)+$`},
		{pattern: "/p/**/**/x", want: `^/[pP](/[^/]+)*/[xX]$`},
		{pattern: "/**/.env", want: `^(/[^/]+)*/\.[eE][nN][vV]$`},
		{pattern: "/p/?.key", want: `^/[pP]/[^/]\.[kK][eE][yY]$`},
		{pattern: "/p/[abc].txt", want: `^/[pP]/[A-Ca-c]\.[tT][xX][tT]$`},
		{pattern: "/p/[a-z0-9]x", want: `^/[pP]/[0-9A-Za-z][xX]$`},
		{pattern: "/p/[^a]x", want: `^/[pP]/[^/Aa][xX]$`},
		{pattern: "/p/[.]x", want: `^/[pP]/\.[xX]$`},
		{pattern: "/p/[.*]x", want: `^/[pP]/[*.][xX]$`},
		{pattern: `/p/[\]\[]x`, want: `^/[pP]/(\[|\])[xX]$`},
		{pattern: "/p/[-a]x", err: true},
		{pattern: `/p/[\-a]x`, want: `^/[pP]/[Aa-][xX]$`},
		{pattern: `/p/[^^\-]x`, want: `^/[pP]/[^/^-][xX]$`},
		{pattern: "/p/[éa]x", want: `^/[pP]/([Aa]|é)[xX]$`},
		{pattern: "/p/[à-é]x", err: true},
		{pattern: "/p/[^é]x", err: true},
		{pattern: `/p/[^\]]x`, err: true},
		{pattern: `/p/\*x`, want: `^/[pP]/\*[xX]$`},
		{pattern: "/p/[a", err: true},
		{pattern: "/p/a**b", err: true},
		{pattern: `/p/*\`, err: true},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			prefix, rest, err := splitPattern(tc.pattern)
			var res []string
			if err == nil {
				res, err = globRegexes(prefix, rest)
			}
			if tc.err {
				if err == nil {
					t.Fatalf("no error, got %q", res)
				}
				if !errors.Is(err, ErrBadPattern) {
					t.Fatalf("error %v is not ErrBadPattern", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := []string{strings.TrimSuffix(tc.want, "$") + "(/|$)"}
			if !slices.Equal(res, want) {
				t.Fatalf("got %q\nwant %q", res, want)
			}
			for _, re := range res {
				if _, err := regexp.Compile(re); err != nil {
					t.Fatalf("%q does not compile: %v", re, err)
				}
			}
		})
	}
}

// globDenies is the reference: a pattern denies a path if the path, or a directory above
// it, is strictly below the pattern's fixed directory and matches the pattern component by
// component, as Expand matches.
func globDenies(prefix string, rest []string, path string) bool {
	var under []string
	switch {
	case prefix == "/":
		under = splitPath(path)
	case strings.HasPrefix(path, prefix+"/"):
		under = splitPath(strings.TrimPrefix(path, prefix))
	default:
		return false
	}
	m := matcher{pat: rest}
	states := m.closure([]int{0})
	for _, name := range under {
		states = m.step(states, name)
		if len(states) == 0 {
			return false
		}
		if slices.Contains(states, len(rest)) {
			return true
		}
	}
	return false
}

func hasASCIILetter(s string) bool {
	for _, c := range []byte(s) {
		if isLetter(c) {
			return true
		}
	}
	return false
}

// FuzzGlobRegexes checks the expressions against the matcher Expand uses: whatever the
// pattern denies, the expressions deny (in either case), and without letters (where case
// does not matter) they deny nothing else.
func FuzzGlobRegexes(f *testing.F) {
	for _, s := range [][2]string{
		{"**/.env", "a/b/.env"}, {"*.pem", "x.pem/y"}, {"[a-c]?", "b1"}, {"**", "q"},
		{"[^x]*/**/z", "y1/z"}, {`\*`, "*"}, {"x/**/y/**", "x/y"}, {"[.-/]", "-"},
		{"é?", "éx"}, {"1[0-9]", "15/2"}, {"[!]", "!"}, {"?", "日"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, path string) {
		if !utf8.ValidString(pat) || !utf8.ValidString(path) || strings.ContainsAny(pat+path, "\x00") {
			return
		}
		full := "/base/" + pat
		if !IsPattern(full) || strings.Contains(pat, "..") || strings.HasPrefix(pat, "/") {
			return
		}
		p := filepath.Clean("/base/" + path)
		if strings.Contains(path, "..") || strings.Contains(path, "//") || strings.HasSuffix(path, "/") || strings.HasPrefix(path, "/") || path == "" {
			return
		}
		prefix, rest, err := splitPattern(full)
		if err != nil {
			return
		}
		res, err := globRegexes(prefix, rest)
		if err != nil {
			if !errors.Is(err, ErrBadPattern) {
				t.Fatalf("%q: %v", full, err)
			}
			return
		}
		matched := false
		for _, re := range res {
			rx, err := regexp.Compile(re)
			if err != nil {
				t.Fatalf("%q gives %q, which does not compile: %v", full, re, err)
			}
			if rx.MatchString(p) {
				matched = true
			}
		}
		want := globDenies(prefix, rest, p)
		if want && !matched {
			t.Fatalf("%q denies %q but %q do not match it", full, p, res)
		}
		if !hasASCIILetter(full) && !hasASCIILetter(p) && matched != want {
			t.Fatalf("%q: expressions %q match %q: %v, the matcher says %v", full, res, p, matched, want)
		}
	})
}

// parseProfile parses generated rules and checks the properties every profile has: it
// reads back, every form is an allow or deny rule with known operations, a deny rule ends
// with the run's tag, only the hard-link rule has no filters, every regular expression
// compiles, and no allow rule follows a deny rule except the /dev carve-out's grants.
func parseProfile(t *testing.T, text, tag string) []sbpl.Node {
	t.Helper()
	nodes, err := sbpl.Parse(text)
	if err != nil {
		t.Fatalf("rules do not parse: %v\n%s", err, text)
	}
	known := map[string]bool{
		"file-read*": true, "file-write*": true, "file-ioctl": true, "file-map-executable": true,
		"process-exec*": true, "file-read-metadata": true, "file-write-unlink": true,
		"file-write-create": true, "file-link": true, "file-clone": true,
	}
	for _, n := range nodes {
		head := n.Head()
		if head != "allow" && head != "deny" {
			t.Fatalf("unexpected form %q at byte %d", head, n.Offset)
		}
		filters := 0
		for i, e := range n.List[1:] {
			switch {
			case !e.IsList && !e.IsString:
				if !known[e.Text] {
					t.Fatalf("unknown operation %q at byte %d", e.Text, e.Offset)
				}
			case e.IsList && e.Head() == "with":
				if head != "deny" || i != len(n.List)-2 || len(e.List) != 3 || e.List[1].Text != "message" || e.List[2].Text != tag {
					t.Fatalf("bad modifier at byte %d", e.Offset)
				}
			case e.IsList && e.Head() == "require-all":
				// The symbolic-link rule: (require-all (vnode-type SYMLINK) (require-any ...)).
				if len(e.List) != 3 || e.List[1].Head() != "vnode-type" || e.List[1].List[1].Text != "SYMLINK" || e.List[2].Head() != "require-any" {
					t.Fatalf("bad require-all at byte %d", e.Offset)
				}
				for _, f := range e.List[2].List[1:] {
					checkPathFilter(t, f)
				}
				filters++
			case e.IsList:
				checkPathFilter(t, e)
				filters++
			default:
				t.Fatalf("unexpected element at byte %d", e.Offset)
			}
		}
		if head == "deny" && n.List[len(n.List)-1].Head() != "with" {
			t.Fatalf("deny rule at byte %d has no message", n.Offset)
		}
		if filters == 0 && !(head == "deny" && n.List[1].Text == "file-link") {
			t.Fatalf("rule without filters at byte %d", n.Offset)
		}
	}
	return nodes
}

// checkPathFilter checks a (subpath|literal|regex "...") filter.
func checkPathFilter(t *testing.T, e sbpl.Node) {
	t.Helper()
	switch e.Head() {
	case "subpath", "literal", "regex":
	default:
		t.Fatalf("unexpected filter %q at byte %d", e.Head(), e.Offset)
	}
	if len(e.List) != 2 || !e.List[1].IsString {
		t.Fatalf("bad filter at byte %d", e.Offset)
	}
	if e.Head() == "regex" {
		if _, err := regexp.Compile(e.List[1].Text); err != nil {
			t.Fatalf("regex %q at byte %d: %v", e.List[1].Text, e.Offset, err)
		}
	} else if !filepath.IsAbs(e.List[1].Text) {
		t.Fatalf("relative path %q at byte %d", e.List[1].Text, e.Offset)
	}
}

// filterValues collects the values of the filters of kind in the rules whose first
// operation is op.
func filterValues(nodes []sbpl.Node, action, op, kind string) []string {
	var out []string
	for _, n := range nodes {
		if n.Head() != action || n.List[1].Text != op {
			continue
		}
		for _, e := range n.List[1:] {
			if e.IsList && e.Head() == kind {
				out = append(out, e.List[1].Text)
			}
		}
	}
	return out
}

func TestSeatbeltRules(t *testing.T) {
	cfg := SeatbeltConfig{
		Config: Config{
			Read:      []string{"/"},
			Write:     []string{"/Users/me/proj", "/tmp/scratch"},
			DenyRead:  []string{"/Users/me/.ssh", "/Users/me/proj/**/*.pem", "/etc/secret"},
			DenyWrite: []string{"/Users/me/proj/.git/hooks", "/Users/me/proj/.envrc"},
			Grants:    []Grant{{Path: "/var/folders/xy/T/cordon-1", Access: Read | Write}},
			Cwd:       "/Users/me/proj",
		},
		Tag:     "cordon-0123abcd",
		Resolve: fakeResolver(nil),
		Expand: func(p, cwd string, limit int) ([]string, error) {
			if p == "/Users/me/proj/**/*.pem" {
				return []string{"/Users/me/proj/certs/link.pem"}, nil
			}
			return nil, nil
		},
	}
	cfg.Resolve = fakeResolver(map[string]string{
		"/Users/me/proj/certs/link.pem": "/Volumes/keys/real.pem",
		"/private/etc/localtime":        "/private/var/db/timezone/zoneinfo/UTC",
	})
	text, err := SeatbeltRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nodes := parseProfile(t, text, cfg.Tag)

	t.Run("grants use the resolved spelling", func(t *testing.T) {
		writes := filterValues(nodes, "allow", "file-write*", "subpath")
		for _, want := range []string{"/Users/me/proj", "/private/tmp/scratch", "/private/var/folders/xy/T/cordon-1", "/dev/null"} {
			if !slices.Contains(writes, want) {
				t.Errorf("no write grant of %s in %q", want, writes)
			}
		}
		if slices.Contains(writes, "/tmp/scratch") {
			t.Error("a grant in the unresolved spelling, which the kernel never checks")
		}
	})
	t.Run("traversal covers symbolic links on the way", func(t *testing.T) {
		meta := filterValues(nodes, "allow", "file-read-metadata", "literal")
		for _, want := range []string{"/", "/tmp", "/var", "/private", "/private/var/folders/xy/T", "/etc", "/private/etc/localtime"} {
			if !slices.Contains(meta, want) {
				t.Errorf("no metadata grant of %s", want)
			}
		}
	})
	t.Run("denials in both spellings and in the spelling of a match", func(t *testing.T) {
		reads := filterValues(nodes, "deny", "file-read*", "subpath")
		for _, want := range []string{"/Users/me/.ssh", "/private/etc/secret", "/etc/secret", "/Volumes/keys/real.pem"} {
			if !slices.Contains(reads, want) {
				t.Errorf("no read denial of %s in %q", want, reads)
			}
		}
	})
	t.Run("denials after grants", func(t *testing.T) {
		firstDeny := -1
		for i, n := range nodes {
			if n.Head() == "deny" && n.List[1].Text == "file-read*" && !slices.ContainsFunc(n.List, func(e sbpl.Node) bool {
				return e.Head() == "subpath" && e.List[1].Text == "/dev"
			}) {
				firstDeny = i
				break
			}
		}
		if firstDeny < 0 {
			t.Fatal("no deny_read rule")
		}
		for _, n := range nodes[firstDeny:] {
			if n.Head() == "allow" {
				t.Fatalf("an allow rule after the denials overrides them: %v", n)
			}
		}
	})
	t.Run("regular expressions match the case variants", func(t *testing.T) {
		var rx []*regexp.Regexp
		for _, re := range filterValues(nodes, "deny", "file-read*", "regex") {
			rx = append(rx, regexp.MustCompile(re))
		}
		matches := func(p string) bool {
			return slices.ContainsFunc(rx, func(r *regexp.Regexp) bool { return r.MatchString(p) })
		}
		for _, p := range []string{"/Users/me/.SSH/id_rsa", "/users/ME/.ssh", "/Users/me/proj/a/b/KEY.PEM", "/Users/me/proj/x.pem/inner", "/private/etc/SECRET"} {
			if !matches(p) {
				t.Errorf("%s is not denied", p)
			}
		}
		for _, p := range []string{"/Users/me/.sshx", "/Users/me/proj/x.pemx", "/Users/me/proj.pem", "/Users/me/other/x.pem"} {
			if matches(p) {
				t.Errorf("%s is denied", p)
			}
		}
	})
	t.Run("directories above denied paths cannot move", func(t *testing.T) {
		unlink := filterValues(nodes, "deny", "file-write-unlink", "literal")
		for _, want := range []string{"/Users/me", "/Users", "/Users/me/proj", "/Users/me/proj/.git", "/Users/me/proj/certs", "/private/etc"} {
			if !slices.Contains(unlink, want) {
				t.Errorf("%s can be renamed", want)
			}
		}
	})
	t.Run("no allow rule without filters", func(t *testing.T) {
		if strings.Contains(text, "(allow file-read*)") || strings.Contains(text, "(allow file-write*)") {
			t.Fatal("an unrestricted allow rule")
		}
	})
}

func TestSeatbeltDevCarve(t *testing.T) {
	for _, tc := range []struct {
		name  string
		read  []string
		carve bool
	}{
		{"root grant", []string{"/"}, true},
		{"no grant above /dev", []string{"/Users"}, false},
		{"/dev itself", []string{"/dev"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, err := SeatbeltRules(SeatbeltConfig{
				Config: Config{Read: append(tc.read, "/dev/disk4")},
				Tag:    "t", Resolve: fakeResolver(nil), Expand: noExpand,
			})
			if err != nil {
				t.Fatal(err)
			}
			nodes := parseProfile(t, text, "t")
			carve, named := -1, -1
			for i, n := range nodes {
				for _, e := range n.List {
					if e.Head() == "subpath" && e.List[1].Text == "/dev" && n.Head() == "deny" {
						carve = i
					}
					if e.Head() == "subpath" && e.List[1].Text == "/dev/disk4" && n.Head() == "allow" {
						named = i
					}
				}
			}
			if (carve >= 0) != tc.carve {
				t.Fatalf("carve-out present: %v, want %v", carve >= 0, tc.carve)
			}
			if named < 0 || named < carve {
				t.Fatalf("the device named in the policy is not granted after the carve-out (%d, %d)", named, carve)
			}
		})
	}
}

func TestSeatbeltRulesErrors(t *testing.T) {
	base := func() SeatbeltConfig {
		return SeatbeltConfig{Tag: "cordon-1", Resolve: fakeResolver(nil), Expand: noExpand}
	}
	for _, tc := range []struct {
		name string
		edit func(*SeatbeltConfig)
		want error
	}{
		{"no tag", func(c *SeatbeltConfig) { c.Tag = "" }, ErrBadPath},
		{"tag with a quote", func(c *SeatbeltConfig) { c.Tag = `a"b` }, ErrBadPath},
		{"relative grant", func(c *SeatbeltConfig) { c.Read = []string{"rel"} }, ErrBadPath},
		{"unclean denial", func(c *SeatbeltConfig) { c.DenyRead = []string{"/a/../b"} }, ErrBadPath},
		{"NUL", func(c *SeatbeltConfig) { c.DenyWrite = []string{"/a\x00b"} }, ErrBadPath},
		{"bad pattern", func(c *SeatbeltConfig) { c.DenyRead = []string{"/a/[b"} }, ErrBadPattern},
		{"inexpressible pattern", func(c *SeatbeltConfig) { c.DenyRead = []string{"/a/[^é]"} }, ErrBadPattern},
		{"expansion fails", func(c *SeatbeltConfig) {
			c.DenyRead = []string{"/a/*"}
			c.Expand = func(string, string, int) ([]string, error) { return nil, errors.New("boom") }
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.edit(&cfg)
			_, err := SeatbeltRules(cfg)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("too broad a pattern is not fatal", func(t *testing.T) {
		cfg := base()
		cfg.DenyRead = []string{"/a/**/x"}
		cfg.Expand = func(string, string, int) ([]string, error) { return nil, ErrGlobTooBroad }
		if _, err := SeatbeltRules(cfg); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzSeatbeltRules writes rules for an arbitrary path in every list and checks that the
// profile keeps its structure: the path cannot add, end or change a rule, and reads back
// exactly.
func FuzzSeatbeltRules(f *testing.F) {
	for _, s := range []string{"/a", `/q"uote`, `/back\slash`, "/new\nline", "/p(a)r;e", "/日本/x y", "/g/**/*.[ch]", `/x/"))(allow default)(("`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.IndexByte(p, 0) >= 0 || !utf8.ValidString(p) {
			return
		}
		cfg := SeatbeltConfig{
			Config: Config{Read: []string{p}, Write: []string{p}, DenyRead: []string{p}, DenyWrite: []string{p},
				Grants: []Grant{{Path: p, Access: All}}},
			Tag: "cordon-f", Resolve: fakeResolver(nil), Expand: noExpand,
		}
		text, err := SeatbeltRules(cfg)
		if err != nil {
			if errors.Is(err, ErrBadPattern) {
				return
			}
			t.Fatal(err)
		}
		nodes := parseProfile(t, text, cfg.Tag)
		if !IsPattern(p) {
			r := cfg.Resolve(p)
			if !slices.Contains(filterValues(nodes, "allow", "file-write*", "subpath"), r) {
				t.Fatalf("%q: no write grant of %q", p, r)
			}
			if !slices.Contains(filterValues(nodes, "deny", "file-write*", "subpath"), r) {
				t.Fatalf("%q: no write denial of %q", p, r)
			}
		}
		// The structure does not depend on the path: the same rules as for a plain one
		// (but for / and /dev, which have rules of their own).
		if p == "/" || isUnder(p, "/dev") {
			return
		}
		plain := cfg
		a := "/a/b" // as deep as p, which matters for the rule about the directories above
		if filepath.Dir(p) == "/" {
			a = "/a"
		}
		plain.Read, plain.Write, plain.DenyRead, plain.DenyWrite = []string{a}, []string{a}, []string{a}, []string{a}
		plain.Grants = []Grant{{Path: a, Access: All}}
		if IsPattern(p) {
			plain.DenyRead, plain.DenyWrite = []string{"/a/*"}, []string{"/a/*"}
		}
		ptext, err := SeatbeltRules(plain)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := heads(nodes), heads(parseProfile(t, ptext, cfg.Tag)); !slices.Equal(got, want) {
			t.Fatalf("%q: rules %q, a plain path gives %q", p, got, want)
		}
	})
}

// heads lists each rule's action and operations.
func heads(nodes []sbpl.Node) []string {
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
