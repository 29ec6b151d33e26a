package plugins

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/textproto"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/api"
	"golang.org/x/net/http/httpguts"
)

// Error codes the host functions return to the guest (negative i32). docs/plugin-abi.md
// lists them; they are part of the ABI and never change within a version.
const (
	codeNotFound    int32 = -1 // no such header or config key
	codeInvalid     int32 = -2 // malformed argument: header name or value, template, status, key handle
	codeForbidden   int32 = -3 // a header the plugin may not change
	codeLimit       int32 = -4 // a size or count limit
	codeUnavailable int32 = -5 // the body could not be read
)

// fault is what a host function panics with to stop the guest: the call fails with sentinel
// and the instance is discarded. wazero recovers the panic and returns it wrapped.
type fault struct {
	sentinel error
	msg      string
}

func (f *fault) Error() string { return f.sentinel.Error() + ": " + f.msg }
func (f *fault) Unwrap() error { return f.sentinel }

func faultf(sentinel error, format string, args ...any) *fault {
	return &fault{sentinel, fmt.Sprintf(format, args...)}
}

// hostFunc is one function of the "cordon" host module.
type hostFunc struct {
	name    string
	params  int // all parameters and results are i32
	results int
	fn      func(p *Plugin, ctx context.Context, m api.Module, s []uint64)
}

var i32 = api.ValueTypeI32

// hostFuncs is the host side of ABI version 1, in the order docs/plugin-abi.md lists it.
var hostFuncs = []hostFunc{
	{"request_method", 2, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		method := c.req.Method
		if method == "" {
			method = "GET"
		}
		s[0] = ret(writeOut(m, s[0], s[1], method))
	}},
	{"request_scheme", 2, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		s[0] = ret(writeOut(m, s[0], s[1], current(ctx).scheme))
	}},
	{"request_host", 2, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		s[0] = ret(writeOut(m, s[0], s[1], current(ctx).host))
	}},
	{"request_port", 0, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		s[0] = ret(int32(current(ctx).port))
	}},
	{"request_path", 2, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		path := current(ctx).req.URL.EscapedPath()
		if path == "" {
			path = "/"
		}
		s[0] = ret(writeOut(m, s[0], s[1], path))
	}},
	{"request_query", 2, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		s[0] = ret(writeOut(m, s[0], s[1], current(ctx).req.URL.RawQuery))
	}},
	{"header_get", 4, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		name, ok := readString(m, s[0], s[1], maxNameLen)
		if !ok {
			s[0] = ret(codeNotFound)
			return
		}
		canon := canonicalName(name)
		vals := c.headerView(canon)
		if canon == "" || len(vals) == 0 {
			s[0] = ret(codeNotFound)
			return
		}
		s[0] = ret(writeOut(m, s[2], s[3], strings.Join(vals, "\n")))
	}},
	{"header_names", 2, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		s[0] = ret(writeOut(m, s[0], s[1], strings.Join(current(ctx).headerNames(), "\n")))
	}},
	{"header_set", 4, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		s[0] = ret(hostSetHeader(ctx, m, s, false))
	}},
	{"header_add", 4, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		s[0] = ret(hostSetHeader(ctx, m, s, true))
	}},
	{"header_remove", 2, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		name, ok := readString(m, s[0], s[1], maxNameLen)
		if !ok {
			s[0] = ret(codeInvalid)
			return
		}
		canon, code := checkName(name)
		if code != 0 {
			s[0] = ret(code)
			return
		}
		s[0] = ret(c.removeHeader(canon))
	}},
	{"header_set_secret", 6, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		s[0] = ret(hostSetHeaderSecret(ctx, m, s))
	}},
	{"deny", 3, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		status := int32(s[0])
		if status < 400 || status > 599 {
			s[0] = ret(codeInvalid)
			return
		}
		reason := readText(m, s[1], s[2], maxReasonLen)
		c.deny = &Deny{Status: int(status), Reason: c.scrub(reason)}
		s[0] = ret(0)
	}},
	{"fail", 2, 0, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		c.failMsg = c.scrub(readText(m, s[0], s[1], maxReasonLen))
	}},
	{"config_get", 4, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		key, ok := readString(m, s[0], s[1], maxNameLen)
		v, found := p.config[key]
		if !ok || !found {
			s[0] = ret(codeNotFound)
			return
		}
		s[0] = ret(writeOut(m, s[2], s[3], v))
	}},
	{"log", 3, 0, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c, _ := ctx.Value(callKey{}).(*call)
		p.guestLog(guestLevel(int32(s[0])), readText(m, s[1], s[2], maxLogLen), c, "log")
	}},
	{"key_from_secret", 4, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		secret, ok1 := readString(m, s[0], s[1], maxSecretName)
		tmpl, ok2 := readString(m, s[2], s[3], maxDataLen)
		if !ok1 || !ok2 {
			s[0] = ret(codeLimit)
			return
		}
		if secret != "" && !validSecretName(secret) {
			s[0] = ret(codeInvalid)
			return
		}
		parts, err := parseTemplate(tmpl, secret)
		if err != nil {
			s[0] = ret(codeInvalid)
			return
		}
		if len(c.keys) >= maxKeys {
			s[0] = ret(codeLimit)
			return
		}
		b, names := c.expand(parts)
		c.keys = append(c.keys, hostKey{b: b, secrets: names})
		s[0] = ret(int32(len(c.keys)))
	}},
	{"key_hmac_sha256", 3, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		k, ok := c.key(int32(s[0]))
		if !ok {
			s[0] = ret(codeInvalid)
			return
		}
		data, ok := readBytes(m, s[1], s[2], maxDataLen)
		if !ok {
			s[0] = ret(codeLimit)
			return
		}
		if len(c.keys) >= maxKeys {
			s[0] = ret(codeLimit)
			return
		}
		mac := hmac.New(sha256.New, k.b)
		mac.Write(data)
		c.keys = append(c.keys, hostKey{b: mac.Sum(nil), secrets: k.secrets})
		s[0] = ret(int32(len(c.keys)))
	}},
	{"hmac_sha256", 4, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		k, ok := c.key(int32(s[0]))
		if !ok {
			s[0] = ret(codeInvalid)
			return
		}
		data, ok := readBytes(m, s[1], s[2], maxDataLen)
		if !ok {
			s[0] = ret(codeLimit)
			return
		}
		mac := hmac.New(sha256.New, k.b)
		mac.Write(data)
		sum := mac.Sum(nil)
		if len(k.secrets) > 0 {
			c.addDerived(sum, "signed with", k.secrets)
		}
		writeFixed(m, s[3], sum)
		s[0] = ret(0)
	}},
	{"sha256_template", 3, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		tmpl, ok := readString(m, s[0], s[1], maxDataLen)
		if !ok {
			s[0] = ret(codeLimit)
			return
		}
		parts, err := parseTemplate(tmpl, "")
		if err != nil {
			s[0] = ret(codeInvalid)
			return
		}
		b, names := c.expand(parts)
		sum := sha256.Sum256(b)
		clear(b)
		if len(names) > 0 {
			c.addDerived(sum[:], "hashed with", names)
		}
		writeFixed(m, s[2], sum[:])
		s[0] = ret(0)
	}},
	{"body_sha256", 1, 1, func(p *Plugin, ctx context.Context, m api.Module, s []uint64) {
		c := current(ctx)
		sum, code := c.bodySHA256(ctx)
		if code != 0 {
			s[0] = ret(code)
			return
		}
		writeFixed(m, s[0], sum[:])
		s[0] = ret(0)
	}},
}

// hostFuncNames returns the set of host function names, for checking a module's imports.
func hostFuncNames() map[string]bool {
	m := make(map[string]bool, len(hostFuncs))
	for _, f := range hostFuncs {
		m[f.name] = true
	}
	return m
}

// instantiateHostModule defines the "cordon" module in the plugin's runtime.
func (p *Plugin) instantiateHostModule(ctx context.Context) error {
	b := p.rt.NewHostModuleBuilder(hostModule)
	for _, f := range hostFuncs {
		params := make([]api.ValueType, f.params)
		for i := range params {
			params[i] = i32
		}
		var results []api.ValueType
		if f.results == 1 {
			results = []api.ValueType{i32}
		}
		fn := f.fn
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
				fn(p, ctx, m, s)
			}), params, results).
			WithName(f.name).
			Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

func hostSetHeader(ctx context.Context, m api.Module, s []uint64, add bool) int32 {
	c := current(ctx)
	name, ok1 := readString(m, s[0], s[1], maxNameLen)
	value, ok2 := readString(m, s[2], s[3], maxValueLen)
	if !ok1 || !ok2 {
		return codeLimit
	}
	canon, code := checkName(name)
	if code != 0 {
		return code
	}
	if !httpguts.ValidHeaderFieldValue(value) {
		return codeInvalid
	}
	return c.setHeader(canon, hval{real: value, view: value}, add)
}

func hostSetHeaderSecret(ctx context.Context, m api.Module, s []uint64) int32 {
	c := current(ctx)
	name, ok1 := readString(m, s[0], s[1], maxNameLen)
	secret, ok2 := readString(m, s[2], s[3], maxSecretName)
	tmpl, ok3 := readString(m, s[4], s[5], maxValueLen)
	if !ok1 || !ok2 || !ok3 {
		return codeLimit
	}
	canon, code := checkName(name)
	if code != 0 {
		return code
	}
	if secret != "" && !validSecretName(secret) {
		return codeInvalid
	}
	parts, err := parseTemplate(tmpl, secret)
	if err != nil {
		return codeInvalid
	}
	literal := render(parts, func(string) string { return "" })
	if !httpguts.ValidHeaderFieldValue(literal) {
		return codeInvalid
	}
	real, names := c.expand(parts)
	if len(names) > 0 && c.scheme != "https" && !c.p.allowHTTP {
		clear(real)
		panic(faultf(ErrInsecureSecret, "it put secret %q into a header of a plain-HTTP request to %s", names[0], c.hostHeader))
	}
	if len(real) > maxValueLen {
		clear(real)
		return codeLimit
	}
	if !httpguts.ValidHeaderFieldValue(string(real)) {
		clear(real)
		panic(faultf(ErrFault, "secret %q cannot be sent in a header: it contains control characters", strings.Join(names, ", ")))
	}
	v := hval{
		real:    string(real),
		view:    render(parts, func(n string) string { return "{secret:" + n + "}" }),
		display: c.scrub(render(parts, func(n string) string { return "\x00" + n + "\x00" })),
	}
	clear(real)
	// Markers go in after scrubbing, so that a literal part cannot fake one.
	v.display = expandMarkers(v.display)
	return c.setHeader(canon, v, false)
}

// expandMarkers turns the NUL-delimited secret names render left into "<secret NAME>".
func expandMarkers(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i+1:], 0)
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString("<secret " + s[i+1:i+1+j] + ">")
		s = s[i+j+2:]
	}
}

func (c *call) key(h int32) (hostKey, bool) {
	if h < 1 || int(h) > len(c.keys) {
		return hostKey{}, false
	}
	return c.keys[h-1], true
}

// current returns the call a request function serves; outside a request (during the
// guest's initialization) it fails the guest.
func current(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		panic(faultf(ErrFault, "a request function was called outside a request"))
	}
	return c
}

func canonicalName(name string) string {
	if !httpguts.ValidHeaderFieldName(name) {
		return ""
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

func ret(v int32) uint64 { return api.EncodeI32(v) }

// guestLevel maps the ABI's log levels (0 debug, 1 info, 2 warn, 3 error) to slog's.
func guestLevel(l int32) slog.Level {
	switch {
	case l <= 0:
		return slog.LevelDebug
	case l == 1:
		return slog.LevelInfo
	case l == 2:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// Guest memory. Pointers and lengths come from the guest and are not trusted: a range that
// is not inside the guest's memory fails the call.

// readBytes returns a view of guest memory [ptr, ptr+n); ok is false if n > max. The view
// aliases guest memory: copy before keeping it.
func readBytes(m api.Module, ptr, n uint64, max int) ([]byte, bool) {
	p, l := uint32(ptr), uint32(n)
	if uint64(l) > uint64(max) {
		return nil, false
	}
	b, ok := m.Memory().Read(p, l)
	if !ok {
		panic(faultf(ErrFault, "it passed memory range [%d, +%d) outside its memory (%d bytes)", p, l, m.Memory().Size()))
	}
	return b, true
}

func readString(m api.Module, ptr, n uint64, max int) (string, bool) {
	b, ok := readBytes(m, ptr, n, max)
	return string(b), ok
}

// readText reads at most max bytes of guest text for a message: longer text is cut, invalid
// UTF-8 and control characters are replaced.
func readText(m api.Module, ptr, n uint64, max int) string {
	l := uint32(n)
	cut := false
	if uint64(l) > uint64(max) {
		l, cut = uint32(max), true
	}
	b, _ := readBytes(m, ptr, uint64(l), max)
	s := sanitize(string(b))
	if cut {
		s += "…"
	}
	return s
}

// sanitize makes guest text safe to log and to send in a response body: valid UTF-8 without
// control characters.
func sanitize(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// writeOut writes v into the guest buffer [buf, buf+capacity) if it fits, and returns its
// length either way (the guest retries with a larger buffer). The buffer must lie inside
// guest memory.
func writeOut(m api.Module, buf, capacity uint64, v string) int32 {
	b, l := uint32(buf), uint32(capacity)
	mem := m.Memory()
	if uint64(b)+uint64(l) > uint64(mem.Size()) {
		panic(faultf(ErrFault, "it passed buffer [%d, +%d) outside its memory (%d bytes)", b, l, mem.Size()))
	}
	if len(v) > maxOutLen {
		return codeLimit
	}
	if uint64(len(v)) <= uint64(l) {
		mem.WriteString(b, v)
	}
	return int32(len(v))
}

// writeFixed writes v (a digest) at ptr, which must have room for it.
func writeFixed(m api.Module, ptr uint64, v []byte) {
	if !m.Memory().Write(uint32(ptr), v) {
		panic(faultf(ErrFault, "it passed output buffer [%d, +%d) outside its memory", uint32(ptr), len(v)))
	}
}
