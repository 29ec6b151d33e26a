package runtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// This file reads the reports of a macOS run's denials, as `log stream --style ndjson`
// prints them, and summarizes them at exit. It is plain Go so that it is tested anywhere;
// log_darwin.go runs the stream.
//
// The kernel (Sandbox.kext) reports a denial as one log event whose message is
//
//	Sandbox: PROCESS(PID) deny(N) OPERATION [TARGET]
//
// followed by the rule's message, here the run's tag, on a line of its own. Repeated
// denials may be folded into "K duplicate report(s) for Sandbox: ...". Any process can
// write to the unified log, and the command knows its tag, so only events the kernel or
// sandboxd wrote are read: a forged line can change what cordon reports, never what the
// sandbox enforces.

// denial is one kind of operation the sandbox refused during a run.
type denial struct {
	Process string // the name of the process, as the kernel reports it
	Op      string // the operation: file-read-data, network-outbound, mach-lookup, ...
	Target  string // the path, address or service name; may be empty
	Count   int
}

// logEvent is the part of an ndjson event that cordon reads.
type logEvent struct {
	Message          string `json:"eventMessage"`
	ProcessID        int    `json:"processID"`
	ProcessImagePath string `json:"processImagePath"`
	SenderImagePath  string `json:"senderImagePath"`
}

// parseLogEvent reads one line of `log stream --style ndjson` and returns the denial it
// reports, if it is a sandbox report of the run with this tag written by the kernel or by
// sandboxd.
func parseLogEvent(line []byte, tag string) (denial, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return denial{}, false // the stream's header, or anything else
	}
	var ev logEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		return denial{}, false
	}
	kernel := ev.ProcessID == 0 && (ev.ProcessImagePath == "" || ev.ProcessImagePath == "/kernel")
	sandboxd := ev.ProcessImagePath == "/usr/libexec/sandboxd"
	if !kernel && !sandboxd {
		return denial{}, false
	}
	return parseSandboxMessage(ev.Message, tag)
}

// parseSandboxMessage reads a report's message: "Sandbox: NAME(PID) deny(N) OP [TARGET]"
// followed by the tag, possibly behind "K duplicate report(s) for ".
func parseSandboxMessage(msg, tag string) (denial, bool) {
	msg = strings.TrimRight(msg, " \t\r\n")
	body, ok := strings.CutSuffix(msg, tag)
	if !ok || tag == "" {
		return denial{}, false
	}
	body = strings.TrimRight(body, " \t\r\n")
	count := 1
	if i := strings.Index(body, " duplicate report"); i > 0 {
		n, err := strconv.Atoi(body[:i])
		rest := body[i+len(" duplicate report"):]
		rest = strings.TrimPrefix(rest, "s")
		rest, found := strings.CutPrefix(rest, " for ")
		if err != nil || !found || n <= 0 {
			return denial{}, false
		}
		count, body = n, rest
	}
	body, ok = strings.CutPrefix(body, "Sandbox: ")
	if !ok {
		return denial{}, false
	}
	// NAME(PID) deny(N) : the name may hold anything, so look for the first "(PID) deny(".
	var d denial
	for i := 0; i < len(body); i++ {
		if body[i] != '(' {
			continue
		}
		j := i + 1
		for j < len(body) && body[j] >= '0' && body[j] <= '9' {
			j++
		}
		if j == i+1 || !strings.HasPrefix(body[j:], ") deny(") {
			continue
		}
		rest := body[j+len(") deny("):]
		k := strings.IndexByte(rest, ')')
		if k < 0 {
			return denial{}, false
		}
		if _, err := strconv.Atoi(rest[:k]); err != nil {
			return denial{}, false
		}
		d.Process = body[:i]
		op, target, _ := strings.Cut(strings.TrimPrefix(rest[k+1:], " "), " ")
		d.Op, d.Target, d.Count = op, target, count
		break
	}
	if d.Op == "" {
		return denial{}, false
	}
	return d, true
}

// denialLog collects a run's denials. It is safe for concurrent use.
type denialLog struct {
	tag string
	// ignore tells denials that are not worth reporting (the canary cordon's helper tries,
	// services that logging libraries look up and live without).
	ignore func(denial) bool

	mu    sync.Mutex
	byKey map[string]*denial
	order []string
	total int
}

func newDenialLog(tag string, ignore func(denial) bool) *denialLog {
	return &denialLog{tag: tag, ignore: ignore, byKey: map[string]*denial{}}
}

// add records one line of the stream.
func (l *denialLog) add(line []byte) {
	d, ok := parseLogEvent(line, l.tag)
	if !ok || (l.ignore != nil && l.ignore(d)) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	key := d.Op + "\x00" + d.Target
	if e, ok := l.byKey[key]; ok {
		e.Count += d.Count
		if !strings.Contains(","+e.Process+",", ","+d.Process+",") && len(e.Process) < 100 {
			e.Process += "," + d.Process
		}
	} else {
		c := d
		l.byKey[key] = &c
		l.order = append(l.order, key)
	}
	l.total += d.Count
}

// denials returns what was recorded, the most frequent first, and the total count.
func (l *denialLog) denials() ([]denial, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]denial, 0, len(l.order))
	for _, k := range l.order {
		out = append(out, *l.byKey[k])
	}
	slices.SortStableFunc(out, func(a, b denial) int { return b.Count - a.Count })
	return out, l.total
}

// maxDenialLines bounds the summary.
const maxDenialLines = 20

// writeDenialSummary writes what the sandbox refused during a run, for the end of the run,
// or nothing if it refused nothing. hint says which part of the policy refused a denial.
func writeDenialSummary(w io.Writer, ds []denial, total int, hint func(denial) string) {
	if total == 0 {
		return
	}
	fmt.Fprintf(w, "cordon: the sandbox denied %d %s (%d %s):\n", total, plural(total, "operation", "operations"),
		len(ds), plural(len(ds), "kind", "kinds"))
	for i, d := range ds {
		if i == maxDenialLines {
			fmt.Fprintf(w, "  ... and %d more kinds\n", len(ds)-i)
			break
		}
		target := printable(d.Target)
		if target != "" {
			target = " " + target
		}
		fmt.Fprintf(w, "  %s%s  %d× (%s)\n", printable(d.Op), target, d.Count, printable(d.Process))
		if h := hint(d); h != "" {
			fmt.Fprintf(w, "      %s\n", h)
		}
	}
}

// printable returns s, or s quoted if it holds a newline or another character that would
// make the summary say something else than it means.
func printable(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q
	}
	return s
}

// denialHints says which part of a policy a denial comes from.
type denialHints struct {
	denyRead, denyWrite, builtin []string // as resolved
	resolve                      func(string) string
}

func newDenialHints(fs denialHintInput) *denialHints {
	h := &denialHints{resolve: fs.Resolve}
	res := func(list []string) []string {
		var out []string
		for _, p := range list {
			out = append(out, p)
			if r := fs.Resolve(p); r != p {
				out = append(out, r)
			}
		}
		return out
	}
	h.denyRead, h.denyWrite, h.builtin = res(fs.DenyRead), res(fs.DenyWrite), res(fs.Builtin)
	return h
}

// denialHintInput is what the hints are made from.
type denialHintInput struct {
	DenyRead, DenyWrite, Builtin []string
	Resolve                      func(string) string
}

func (h *denialHints) hint(d denial) string {
	under := func(list []string) string {
		for _, p := range list {
			if ok, _ := filepath.Match(p, d.Target); ok || d.Target == p || strings.HasPrefix(d.Target, strings.TrimSuffix(p, "/")+"/") {
				return p
			}
		}
		return ""
	}
	switch op := d.Op; {
	case op == "file-link" || op == "file-clone":
		return "hard links and clones cannot be made in a macOS sandbox (programs fall back to copying)"
	case strings.HasPrefix(op, "file-read") || op == "file-map-executable" || strings.HasPrefix(op, "process-exec"):
		if p := under(h.denyRead); p != "" {
			return fmt.Sprintf("deny_read %q", p)
		}
		return "not in filesystem.allow_read"
	case strings.HasPrefix(op, "file-write"):
		if p := under(h.denyWrite); p != "" {
			return fmt.Sprintf("deny_write %q", p)
		}
		if p := under(h.builtin); p != "" {
			return fmt.Sprintf("the built-in write-deny list (%s); builtin_deny_write = false turns it off", p)
		}
		if p := under(h.denyRead); p != "" {
			return fmt.Sprintf("deny_read %q (a read-denied path cannot be moved or removed)", p)
		}
		return "not in filesystem.allow_write"
	case op == "network-outbound" && strings.HasPrefix(d.Target, "/"):
		return "not in network.allow_unix_sockets"
	case op == "network-outbound":
		return "direct connections are refused: programs reach the network through the proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY)"
	case op == "network-bind" || op == "network-inbound":
		return "network.allow_local_bind is off"
	case op == "mach-lookup":
		return "a macOS service cordon's profile does not allow (docs/macos.md)"
	}
	return "not allowed by cordon's macOS profile (docs/macos.md)"
}

// noisyDenial tells the denials that say nothing about the policy: lookups of logging and
// analytics services that libraries try and live without.
func noisyDenial(d denial) bool {
	if d.Op == "mach-lookup" {
		switch d.Target {
		case "com.apple.diagnosticd", "com.apple.analyticsd":
			return true
		}
	}
	return false
}
