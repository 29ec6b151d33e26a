package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/cordonsh/cordon/hostmatch"
	"github.com/cordonsh/cordon/plugins"
)

const pluginUsage = `Usage: cordon plugin test PLUGIN.wasm --request 'METHOD URL' [flags]

Runs a WebAssembly plugin on one request, exactly as cordon's proxy would, and prints what it
did: the headers it added, changed or removed, or its refusal. Nothing is sent anywhere.
Secrets are shown as <secret NAME>, and values computed from them (an HMAC signature) as
<signed with secret NAME>.

Exit status: 0 if the plugin ran (whether it let the request through or denied it), 1 if it
failed the request (a trap, a timeout, running out of memory, using a secret it was not
given: the proxy would answer 502), 125 for bad flags.

Flags:
`

func init() {
	register(command{
		name:    "plugin",
		summary: "test a WebAssembly credential plugin on one request",
		usage:   func() string { return pluginUsage + flagDefaults(newPluginTestFlags(&pluginTestOptions{})) },
		run:     runPlugin,
	})
}

// pluginTestOptions are the flags of `cordon plugin test`.
type pluginTestOptions struct {
	request     string
	headers     listFlag
	secrets     listFlag
	config      listFlag
	hosts       listFlag
	data        string
	timeout     time.Duration
	memoryLimit string
	allowHTTP   bool
	json        bool
}

func newPluginTestFlags(o *pluginTestOptions) *flag.FlagSet {
	fs := newFlagSet("plugin test")
	fs.StringVar(&o.request, "request", "", "the request, `'METHOD URL'` such as 'GET https://api.github.com/user' (required)")
	fs.Var(&o.headers, "header", "a request header `'NAME: VALUE'`; repeatable")
	fs.Var(&o.secrets, "secret", "a secret the plugin may use, `NAME=VALUE`; VALUE may also be env:VAR or file:PATH; repeatable")
	fs.Var(&o.config, "config", "a config entry `KEY=VALUE`; repeatable")
	fs.Var(&o.hosts, "hosts", "a host `PATTERN` the plugin is bound to; repeatable (default: the request's host)")
	fs.StringVar(&o.data, "data", "", "the request body `TEXT`")
	fs.DurationVar(&o.timeout, "timeout", plugins.DefaultTimeout, "time limit of the call")
	fs.StringVar(&o.memoryLimit, "memory-limit", "32MiB", "memory limit `SIZE`, such as 32MiB")
	fs.BoolVar(&o.allowHTTP, "allow-http", false, "let the plugin put secrets into a plain-HTTP request")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	return fs
}

func runPlugin(args []string, io stdio) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprint(io.err, "Usage: cordon plugin test PLUGIN.wasm --request 'METHOD URL' [flags]\nRun 'cordon help plugin' for the flags.\n")
		return exitFailure
	}
	args = args[1:]
	var o pluginTestOptions
	fs := newPluginTestFlags(&o)
	// The module path may come before or after the flags.
	var path string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		path, args = args[0], args[1:]
	}
	if !parseFlags(fs, args, io) {
		return exitFailure
	}
	rest := fs.Args()
	if path == "" && len(rest) > 0 {
		path, rest = rest[0], rest[1:]
	}
	if path == "" || len(rest) > 0 {
		fmt.Fprint(io.err, "cordon plugin test: give one PLUGIN.wasm\n")
		return exitFailure
	}
	t, err := o.setup(path)
	if err != nil {
		fmt.Fprintf(io.err, "cordon plugin test: %v\n", err)
		return exitFailure
	}
	return t.run(io)
}

// pluginTest is one prepared run of `cordon plugin test`.
type pluginTest struct {
	opts    *pluginTestOptions
	cfg     plugins.PluginConfig
	req     *http.Request
	secrets map[string]string // name -> value, for the final redaction pass
}

func (o *pluginTestOptions) setup(path string) (*pluginTest, error) {
	if o.request == "" {
		return nil, errors.New("--request 'METHOD URL' is required")
	}
	method, rawURL, ok := strings.Cut(strings.TrimSpace(o.request), " ")
	if !ok {
		method, rawURL = "GET", method
	}
	rawURL = strings.TrimSpace(rawURL)
	if !httpguts.ValidHeaderFieldName(method) { // a method is a token, like a header name
		return nil, fmt.Errorf("--request: %q is not an HTTP method", method)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--request: %q is not an http:// or https:// URL", rawURL)
	}
	var body io.Reader
	if o.data != "" {
		body = strings.NewReader(o.data)
	}
	req, err := http.NewRequest(strings.ToUpper(method), u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("--request: %v", err)
	}
	for _, h := range o.headers {
		k, v, ok := strings.Cut(h, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("--header %q: want 'NAME: VALUE'", h)
		}
		req.Header.Add(k, v)
	}
	t := &pluginTest{opts: o, req: req, secrets: map[string]string{}}
	t.cfg = plugins.PluginConfig{
		Name: strings.TrimSuffix(baseName(path), ".wasm"), Path: path,
		Secrets: map[string][]byte{}, Config: map[string]string{},
		Timeout: o.timeout, AllowHTTP: o.allowHTTP,
	}
	for _, s := range o.secrets {
		name, val, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--secret %q: want NAME=VALUE", s)
		}
		v, err := secretValue(val)
		if err != nil {
			return nil, fmt.Errorf("--secret %s: %v", name, err)
		}
		t.cfg.Secrets[name] = []byte(v)
		t.secrets[name] = v
	}
	for _, c := range o.config {
		k, v, ok := strings.Cut(c, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--config %q: want KEY=VALUE", c)
		}
		t.cfg.Config[k] = v
	}
	hosts := o.hosts
	if len(hosts) == 0 {
		hosts = listFlag{u.Hostname()}
	}
	for _, h := range hosts {
		p, err := hostmatch.Parse(h)
		if err != nil {
			return nil, fmt.Errorf("--hosts: %v", err)
		}
		t.cfg.Hosts = append(t.cfg.Hosts, p)
	}
	if t.cfg.MemoryLimit, err = parseByteSize(o.memoryLimit); err != nil {
		return nil, fmt.Errorf("--memory-limit: %v", err)
	}
	return t, nil
}

// secretValue reads a --secret value: literal, env:VAR or file:PATH.
func secretValue(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, "env:"):
		val, ok := os.LookupEnv(v[len("env:"):])
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", v[len("env:"):])
		}
		return val, nil
	case strings.HasPrefix(v, "file:"):
		b, err := os.ReadFile(v[len("file:"):])
		if err != nil {
			return "", err
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
	}
	return v, nil
}

func parseByteSize(s string) (uint64, error) {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
			if err != nil {
				break
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q is not a size such as 32MiB", s)
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// pluginTestResult is the outcome, as printed (and as JSON with --json).
type pluginTestResult struct {
	Plugin  string         `json:"plugin"`
	Request string         `json:"request"`
	Result  string         `json:"result"` // "allowed", "denied" or "failed"
	Status  int            `json:"status,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Error   string         `json:"error,omitempty"`
	Changes []pluginChange `json:"changes,omitempty"`
	Log     []string       `json:"log,omitempty"`
}

type pluginChange struct {
	Op     string   `json:"op"` // "add", "change" or "remove"
	Name   string   `json:"name"`
	Before []string `json:"before,omitempty"`
	After  []string `json:"after,omitempty"`
}

func (t *pluginTest) run(io stdio) int {
	logs := &logRecorder{}
	host, err := plugins.NewHost(plugins.HostConfig{Logger: slog.New(logs)})
	if err != nil {
		// The disk cache is only for speed.
		host, err = plugins.NewHost(plugins.HostConfig{NoDiskCache: true, Logger: slog.New(logs)})
		if err != nil {
			fmt.Fprintf(io.err, "cordon plugin test: %v\n", err)
			return exitFailure
		}
	}
	ctx := context.Background()
	defer host.Close(ctx)
	out := pluginTestResult{Plugin: t.cfg.Path, Request: t.req.Method + " " + t.req.URL.String()}
	code := 0
	p, err := host.Load(ctx, t.cfg)
	if err == nil {
		var res plugins.Result
		res, err = p.Apply(ctx, t.req)
		if err == nil {
			out.fill(res)
		}
	}
	if err != nil {
		out.Result, out.Error, code = "failed", err.Error(), 1
	}
	out.Log = logs.lines()
	t.redact(&out)
	if t.opts.json {
		enc := json.NewEncoder(io.out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	} else {
		out.print(io.out)
	}
	return code
}

func (r *pluginTestResult) fill(res plugins.Result) {
	if res.Deny != nil {
		r.Result, r.Status, r.Reason = "denied", res.Deny.Status, res.Deny.Reason
		return
	}
	r.Result = "allowed"
	for _, c := range res.Changes {
		op := "change"
		switch {
		case len(c.Before) == 0:
			op = "add"
		case len(c.After) == 0:
			op = "remove"
		}
		r.Changes = append(r.Changes, pluginChange{Op: op, Name: c.Name, Before: c.Before, After: c.After})
	}
}

// redact replaces any secret value left in the output by its name. The plugin host already
// redacts everything it reports; this is a second line.
func (t *pluginTest) redact(r *pluginTestResult) {
	names := make([]string, 0, len(t.secrets))
	for n := range t.secrets {
		names = append(names, n)
	}
	// Longer values first, so that a secret containing another is replaced whole.
	sort.Slice(names, func(i, j int) bool { return len(t.secrets[names[i]]) > len(t.secrets[names[j]]) })
	scrub := func(s string) string {
		for _, n := range names {
			if v := t.secrets[n]; v != "" {
				s = strings.ReplaceAll(s, v, "<secret "+n+">")
			}
		}
		return s
	}
	r.Reason, r.Error = scrub(r.Reason), scrub(r.Error)
	for i := range r.Changes {
		for j := range r.Changes[i].After {
			r.Changes[i].After[j] = scrub(r.Changes[i].After[j])
		}
		for j := range r.Changes[i].Before {
			r.Changes[i].Before[j] = scrub(r.Changes[i].Before[j])
		}
	}
	for i := range r.Log {
		r.Log[i] = scrub(r.Log[i])
	}
}

func (r *pluginTestResult) print(w io.Writer) {
	fmt.Fprintf(w, "plugin   %s\nrequest  %s\n", r.Plugin, r.Request)
	switch r.Result {
	case "failed":
		fmt.Fprintf(w, "result   FAILED: the proxy would answer 502 and not send the request\nerror    %s\n", r.Error)
	case "denied":
		fmt.Fprintf(w, "result   denied: %d %s\nreason   %s\n", r.Status, http.StatusText(r.Status), r.Reason)
	default:
		switch len(r.Changes) {
		case 0:
			fmt.Fprint(w, "result   allowed, headers unchanged\n")
		case 1:
			fmt.Fprint(w, "result   allowed, 1 header changed\n")
		default:
			fmt.Fprintf(w, "result   allowed, %d headers changed\n", len(r.Changes))
		}
		for _, c := range r.Changes {
			switch c.Op {
			case "add":
				for _, v := range c.After {
					fmt.Fprintf(w, "  + %s: %s\n", c.Name, v)
				}
			case "remove":
				for _, v := range c.Before {
					fmt.Fprintf(w, "  - %s: %s\n", c.Name, v)
				}
			default:
				for _, v := range c.Before {
					fmt.Fprintf(w, "  ~ %s: %s\n", c.Name, v)
				}
				for _, v := range c.After {
					fmt.Fprintf(w, "    -> %s\n", v)
				}
			}
		}
	}
	if len(r.Log) > 0 {
		fmt.Fprint(w, "log\n")
		for _, l := range r.Log {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

// logRecorder is a slog.Handler that keeps the plugin's log lines for printing.
type logRecorder struct {
	mu  sync.Mutex
	out []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "plugin call failed" { // the error is printed on its own
		return nil
	}
	var text, source string
	var rest []string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "text":
			text = a.Value.String()
		case "source":
			source = a.Value.String()
		case "plugin":
		default:
			rest = append(rest, a.Key+"="+a.Value.String())
		}
		return true
	})
	line := strings.ToLower(r.Level.String()) + " "
	switch {
	case r.Message == "plugin output":
		line += source + ": " + text
	default:
		line += r.Message
	}
	if len(rest) > 0 {
		line += " (" + strings.Join(rest, ", ") + ")"
	}
	l.mu.Lock()
	l.out = append(l.out, line)
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.out...)
}
