package runtime

import (
	"bytes"
	_ "embed"
	"slices"
	"strings"
	"testing"
)

const sampleTag = "cordon-0123456789abcdef"

// sampleNDJSON is embedded so that the test binary runs anywhere (the escape suite runs it
// outside the source tree).
//
//go:embed testdata/unifiedlog/run.ndjson
var sampleNDJSON []byte

// sampleLog is a recorded-style stream (written for these tests, in the shape `log stream
// --style ndjson` prints) with reports of this run, of another run, forged ones, noise and
// broken lines.
func sampleLog(t *testing.T) *denialLog {
	t.Helper()
	data := sampleNDJSON
	canary := "/private/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/cordon-1234/.cordon-canary"
	l := newDenialLog(sampleTag, func(d denial) bool { return noisyDenial(d) || d.Target == canary })
	for _, line := range bytes.Split(data, []byte("\n")) {
		l.add(line)
	}
	return l
}

func TestDenialLog(t *testing.T) {
	ds, total := sampleLog(t).denials()
	want := []denial{
		{Process: "cat", Op: "file-read-data", Target: "/Users/me/.ssh/id_rsa", Count: 5},
		{Process: "git", Op: "file-write-create", Target: "/Users/me/src/app/.git/hooks/pre-commit", Count: 1},
		{Process: "curl", Op: "network-outbound", Target: "93.184.216.34:443", Count: 1},
		{Process: "node", Op: "mach-lookup", Target: "com.apple.trustd.agent", Count: 1},
		{Process: "my proc (x)", Op: "file-read-data", Target: "/Users/me/dir with space/new\nline", Count: 1},
		{Process: "python3", Op: "sysctl-read", Target: "kern.procargs2", Count: 1},
		{Process: "node", Op: "file-write-unlink", Target: "/Users/me/src/app/.env", Count: 1},
		{Process: "ln", Op: "file-link", Target: "/Users/me/.aws/credentials", Count: 1},
	}
	if !slices.Equal(ds, want) {
		t.Fatalf("denials:\n%+v\nwant\n%+v", ds, want)
	}
	if total != 12 {
		t.Fatalf("total %d, want 12", total)
	}
}

func TestParseSandboxMessage(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want denial
		ok   bool
	}{
		{"Sandbox: cat(1) deny(1) file-read-data /a\n" + sampleTag, denial{"cat", "file-read-data", "/a", 1}, true},
		{"Sandbox: cat(1) deny(1) file-read-data /a " + sampleTag, denial{"cat", "file-read-data", "/a", 1}, true},
		{"Sandbox: cat(1) deny(1) file-read-data /a\n" + sampleTag + "\n", denial{"cat", "file-read-data", "/a", 1}, true},
		{"Sandbox: sh(2) deny(1) process-fork\n" + sampleTag, denial{"sh", "process-fork", "", 1}, true},
		{"1 duplicate report for Sandbox: cat(1) deny(1) file-read-data /a\n" + sampleTag, denial{"cat", "file-read-data", "/a", 1}, true},
		{"12 duplicate reports for Sandbox: cat(1) deny(1) file-read-data /a\n" + sampleTag, denial{"cat", "file-read-data", "/a", 12}, true},
		{"Sandbox: a(1) deny(1) b(4242) deny(1) file-read-data /x\n" + sampleTag, denial{"a", "b(4242)", "deny(1) file-read-data /x", 1}, true},
		{"Sandbox: cat(1) deny(1) file-read-data /a", denial{}, false},
		{"Sandbox: cat(1) deny(1) file-read-data /a\ncordon-other", denial{}, false},
		{"sandbox: cat(1) deny(1) x\n" + sampleTag, denial{}, false},
		{"Sandbox: cat(1) allow(1) x\n" + sampleTag, denial{}, false},
		{"Sandbox: cat() deny(1) x\n" + sampleTag, denial{}, false},
		{"Sandbox: cat(1) deny(x) y\n" + sampleTag, denial{}, false},
		{"x duplicate reports for Sandbox: cat(1) deny(1) y\n" + sampleTag, denial{}, false},
		{"0 duplicate reports for Sandbox: cat(1) deny(1) y\n" + sampleTag, denial{}, false},
		{sampleTag, denial{}, false},
		{"", denial{}, false},
	} {
		t.Run(tc.msg, func(t *testing.T) {
			got, ok := parseSandboxMessage(tc.msg, sampleTag)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWriteDenialSummary(t *testing.T) {
	ds, total := sampleLog(t).denials()
	h := newDenialHints(denialHintInput{
		DenyRead:  []string{"/Users/me/.ssh", "/Users/me/src/app/.env"},
		DenyWrite: []string{},
		Builtin:   []string{"/Users/me/src/app/.git/hooks"},
		Resolve:   macResolver,
	})
	var b strings.Builder
	writeDenialSummary(&b, ds, total, h.hint)
	want := `cordon: the sandbox denied 12 operations (8 kinds):
  file-read-data /Users/me/.ssh/id_rsa  5× (cat)
      deny_read "/Users/me/.ssh"
  file-write-create /Users/me/src/app/.git/hooks/pre-commit  1× (git)
      the built-in write-deny list (/Users/me/src/app/.git/hooks); builtin_deny_write = false turns it off
  network-outbound 93.184.216.34:443  1× (curl)
      direct connections are refused: programs reach the network through the proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY)
  mach-lookup com.apple.trustd.agent  1× (node)
      a macOS service cordon's profile does not allow (docs/macos.md)
  file-read-data "/Users/me/dir with space/new\nline"  1× (my proc (x))
      not in filesystem.allow_read
  sysctl-read kern.procargs2  1× (python3)
      not allowed by cordon's macOS profile (docs/macos.md)
  file-write-unlink /Users/me/src/app/.env  1× (node)
      deny_read "/Users/me/src/app/.env" (a read-denied path cannot be moved or removed)
  file-link /Users/me/.aws/credentials  1× (ln)
      hard links and clones cannot be made in a macOS sandbox (programs fall back to copying)
`
	if b.String() != want {
		t.Fatalf("summary:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	writeDenialSummary(&b, nil, 0, h.hint)
	if b.Len() != 0 {
		t.Fatalf("summary of nothing: %q", b.String())
	}
	var many []denial
	for i := range maxDenialLines + 5 {
		many = append(many, denial{Process: "p", Op: "file-read-data", Target: "/f" + strings.Repeat("x", i), Count: 1})
	}
	b.Reset()
	writeDenialSummary(&b, many, len(many), func(denial) string { return "" })
	if !strings.HasSuffix(b.String(), "  ... and 5 more kinds\n") {
		t.Fatalf("long summary ends with %q", b.String()[max(0, b.Len()-60):])
	}
}

// FuzzParseLogEvent feeds arbitrary lines to the parser of the unified log, whose content
// the sandboxed command can influence (its process names, the paths it touches).
func FuzzParseLogEvent(f *testing.F) {
	for _, line := range bytes.Split(sampleNDJSON, []byte("\n")) {
		f.Add(line)
	}
	f.Add([]byte(`{"processID":0,"eventMessage":"Sandbox: a\nb(1) deny(1) x\ny z\n` + sampleTag + `"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		d, ok := parseLogEvent(line, sampleTag)
		if ok && (d.Op == "" || d.Count <= 0) {
			t.Fatalf("%q parsed as %+v", line, d)
		}
		l := newDenialLog(sampleTag, nil)
		l.add(line)
		ds, total := l.denials()
		var b strings.Builder
		writeDenialSummary(&b, ds, total, func(denial) string { return "" })
		if total > 0 && strings.Count(b.String(), "\n") != 1+len(ds) {
			t.Fatalf("summary of %q has stray lines:\n%s", line, b.String())
		}
	})
}
