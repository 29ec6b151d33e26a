package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"sort"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/cordonsh/cordon/hostmatch"
)

// Limits on what one call may ask of the host. The ABI documents them.
const (
	maxNameLen    = 256       // header name, config key
	maxValueLen   = 16 << 10  // one header value
	maxOps        = 256       // header changes per call
	maxAddedBytes = 64 << 10  // bytes of header names and values set per call
	maxReasonLen  = 1 << 10   // deny reason, fail message; longer ones are cut
	maxLogLen     = 1 << 10   // log line; longer ones are cut
	maxKeys       = 64        // key handles per call
	maxDataLen    = 1 << 20   // HMAC data, templates
	maxOutLen     = 256 << 10 // anything the host writes back
)

// Headers the guest may not change: they frame the message or address the proxy, and
// changing them could smuggle a second request or redirect this one.
var forbiddenHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authorization": true,
	"Proxy-Authenticate": true, "Te": true, "Trailer": true, "Upgrade": true,
}

// Headers the guest cannot see: the proxy's own credential.
var hiddenHeaders = map[string]bool{"Proxy-Authorization": true}

// callKey is the context key of the *call a guest call serves.
type callKey struct{}

// call is the state of one Apply: the request as the guest sees and changes it, its key
// handles and the secret-derived values it was given. Changes are kept here and applied to
// the request only when the guest returns normally without a deny.
type call struct {
	p          *Plugin
	req        *http.Request
	scheme     string
	host       string // canonical, no port
	port       uint16
	hostHeader string // the Host header that will be sent

	touched map[string]*headerState // canonical name -> state, for changed headers
	ops     int
	added   int

	deny    *Deny
	failMsg string

	keys    []hostKey
	derived []derivedValue

	bodyDone bool
	bodySum  [32]byte
	bodyCode int32
}

// hval is one header value: what is sent, what the guest reads back, what Result shows.
type hval struct {
	real    string
	view    string // secrets written as {secret:NAME}
	display string // secrets written as <secret NAME>; "" for a value without secrets
}

type headerState struct {
	before []string
	vals   []hval
}

// hostKey is an HMAC key that lives only in the host. secrets names the secrets it was made
// from; empty if none.
type hostKey struct {
	b       []byte
	secrets []string
}

// derivedValue is an output computed from a secret and given to the guest (an HMAC, a hash of
// a template with a secret). Its encodings are redacted from logs, errors and Results.
type derivedValue struct {
	forms  []string
	marker string
}

func newCall(p *Plugin, req *http.Request) (*call, error) {
	if req == nil || req.URL == nil {
		return nil, p.errorf(ErrHostNotBound, "request has no URL")
	}
	c := &call{p: p, req: req, scheme: strings.ToLower(req.URL.Scheme)}
	var defPort uint16
	switch c.scheme {
	case "http":
		defPort = 80
	case "https":
		defPort = 443
	default:
		return nil, p.errorf(ErrHostNotBound, "request scheme %q is neither http nor https", req.URL.Scheme)
	}
	if req.URL.Host == "" {
		return nil, p.errorf(ErrHostNotBound, "request URL has no host (set req.URL.Scheme and req.URL.Host to the destination)")
	}
	host, port, err := splitHost(req.URL.Host, defPort)
	if err != nil {
		return nil, p.errorf(ErrHostNotBound, "request host %q: %v", req.URL.Host, err)
	}
	if !p.Matches(host, port) {
		return nil, p.errorf(ErrHostNotBound, "%s is not among its hosts", req.URL.Host)
	}
	c.host, c.port = host, port
	c.hostHeader = req.URL.Host
	if req.Host != "" && req.Host != req.URL.Host {
		// The Host header decides where a shared front end routes the request; it must be
		// bound too, or a secret could be routed to someone else's virtual host.
		hh, hp, err := splitHost(req.Host, defPort)
		if err != nil || !p.Matches(hh, hp) {
			return nil, p.errorf(ErrHostNotBound, "Host header %q is not among its hosts", req.Host)
		}
		c.hostHeader = req.Host
	}
	return c, nil
}

// splitHost splits "host[:port]" and canonicalizes host.
func splitHost(hostport string, defPort uint16) (string, uint16, error) {
	host, port := hostport, defPort
	if h, ps, err := net.SplitHostPort(hostport); err == nil {
		p, err := hostmatch.ParsePort(ps)
		if err != nil {
			return "", 0, err
		}
		host, port = h, p
	}
	canon, err := hostmatch.Canonical(host)
	if err != nil {
		return "", 0, err
	}
	return canon, port, nil
}

// origValues returns the request's values for a canonical header name.
func (c *call) origValues(name string) []string {
	if c.req.Header == nil {
		return nil
	}
	if v, ok := c.req.Header[name]; ok {
		return v
	}
	for k, v := range c.req.Header {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// headerView returns the values the guest reads for a canonical name.
func (c *call) headerView(name string) []string {
	if name == "Host" {
		return []string{c.hostHeader}
	}
	if hiddenHeaders[name] {
		return nil
	}
	if st, ok := c.touched[name]; ok {
		out := make([]string, len(st.vals))
		for i, v := range st.vals {
			out[i] = v.view
		}
		return out
	}
	return c.origValues(name)
}

// headerNames returns the canonical names of the headers the guest sees, sorted.
func (c *call) headerNames() []string {
	seen := map[string]bool{"Host": true}
	for k, v := range c.req.Header {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if len(v) > 0 && !hiddenHeaders[ck] {
			seen[ck] = true
		}
	}
	for k, st := range c.touched {
		seen[k] = len(st.vals) > 0
	}
	var names []string
	for k, ok := range seen {
		if ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// checkName validates a header name the guest wants to change and returns it canonical.
func checkName(name string) (string, int32) {
	if len(name) > maxNameLen || !httpguts.ValidHeaderFieldName(name) {
		return "", codeInvalid
	}
	canon := textproto.CanonicalMIMEHeaderKey(name)
	if forbiddenHeaders[canon] {
		return "", codeForbidden
	}
	return canon, 0
}

// touch returns the state of a header, starting it from the request's values.
func (c *call) touch(name string) *headerState {
	if st, ok := c.touched[name]; ok {
		return st
	}
	if c.touched == nil {
		c.touched = map[string]*headerState{}
	}
	before := slices.Clone(c.origValues(name))
	st := &headerState{before: before}
	for _, v := range before {
		st.vals = append(st.vals, hval{real: v, view: v})
	}
	c.touched[name] = st
	return st
}

// setHeader replaces (or with add, extends) a header. v has been validated.
func (c *call) setHeader(name string, v hval, add bool) int32 {
	if c.ops >= maxOps || c.added+len(name)+len(v.real) > maxAddedBytes {
		return codeLimit
	}
	c.ops++
	c.added += len(name) + len(v.real)
	st := c.touch(name)
	if add {
		st.vals = append(st.vals, v)
	} else {
		st.vals = []hval{v}
	}
	return 0
}

func (c *call) removeHeader(name string) int32 {
	if c.ops >= maxOps {
		return codeLimit
	}
	c.ops++
	c.touch(name).vals = nil
	return 0
}

// expand fills a parsed template's secrets. It fails the call if the plugin was not granted
// one of them.
func (c *call) expand(parts []tmplPart) ([]byte, []string) {
	var out []byte
	var names []string
	for _, pt := range parts {
		if pt.secret == "" {
			out = append(out, pt.text...)
			continue
		}
		v, ok := c.p.secrets[pt.secret]
		if !ok {
			panic(faultf(ErrSecretNotGranted, "it asked for secret %q", pt.secret))
		}
		out = append(out, v...)
		if !slices.Contains(names, pt.secret) {
			names = append(names, pt.secret)
		}
	}
	return out, names
}

// addDerived records an output computed from secrets, so that it can be redacted.
func (c *call) addDerived(b []byte, verb string, secrets []string) {
	marker := "<" + verb + " secret " + strings.Join(secrets, ", secret ") + ">"
	up := strings.ToUpper(hex.EncodeToString(b))
	c.derived = append(c.derived, derivedValue{marker: marker, forms: []string{
		hex.EncodeToString(b), up,
		base64.StdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		string(b),
	}})
}

// scrub replaces every secret and every secret-derived value in s by a marker. Guest text
// never holds a secret (the guest never sees one), but it can hold derived values.
func (c *call) scrub(s string) string {
	if c == nil {
		return s
	}
	for _, d := range c.derived {
		for _, f := range d.forms {
			if f != "" && strings.Contains(s, f) {
				s = strings.ReplaceAll(s, f, d.marker)
			}
		}
	}
	return c.p.scrubSecrets(s)
}

// scrubSecrets replaces the bytes of each of the plugin's secrets in s by "<secret NAME>".
func (p *Plugin) scrubSecrets(s string) string {
	for name, v := range p.secrets {
		if len(v) > 0 && strings.Contains(s, string(v)) {
			s = strings.ReplaceAll(s, string(v), "<secret "+name+">")
		}
	}
	return s
}

// bodySHA256 hashes the request body, buffering at most MaxBodyBytes of it; it returns 0 or an
// ABI error code. The request's body reads the same bytes afterwards.
func (c *call) bodySHA256(ctx context.Context) ([32]byte, int32) {
	if c.bodyDone {
		return c.bodySum, c.bodyCode
	}
	c.bodyDone = true
	req := c.req
	if req.Body == nil || req.Body == http.NoBody {
		c.bodySum = sha256.Sum256(nil)
		return c.bodySum, 0
	}
	limit := c.p.maxBody
	if req.ContentLength > limit {
		c.bodyCode = codeLimit
		return c.bodySum, c.bodyCode
	}
	body := req.Body
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(body, limit+1))
		done <- result{b, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		// The reader goroutine finishes when the body does; the request fails anyway.
		panic(faultf(ErrTimeout, "reading the request body for body_sha256 took longer than %v", c.p.timeout))
	}
	switch {
	case r.err != nil:
		req.Body = readCloser{io.MultiReader(bytes.NewReader(r.b), errReader{r.err}), body}
		c.bodyCode = codeUnavailable
	case int64(len(r.b)) > limit:
		req.Body = readCloser{io.MultiReader(bytes.NewReader(r.b), body), body}
		c.bodyCode = codeLimit
	default:
		buf := r.b
		req.Body = readCloser{bytes.NewReader(buf), body}
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
		c.bodySum = sha256.Sum256(buf)
	}
	return c.bodySum, c.bodyCode
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// commit applies the changes to the request, unless the plugin denied it, and describes them.
func (c *call) commit() Result {
	if c.deny != nil {
		return Result{Deny: c.deny}
	}
	if len(c.touched) == 0 {
		return Result{}
	}
	names := make([]string, 0, len(c.touched))
	for k := range c.touched {
		names = append(names, k)
	}
	sort.Strings(names)
	if c.req.Header == nil {
		c.req.Header = http.Header{}
	}
	var res Result
	for _, name := range names {
		st := c.touched[name]
		for k := range c.req.Header {
			if strings.EqualFold(k, name) {
				delete(c.req.Header, k)
			}
		}
		var reals, shown []string
		for _, v := range st.vals {
			reals = append(reals, v.real)
			if v.display != "" {
				shown = append(shown, v.display)
			} else {
				shown = append(shown, c.scrub(v.real))
			}
		}
		if len(reals) > 0 {
			c.req.Header[name] = reals
		}
		if !slices.Equal(st.before, reals) {
			res.Changes = append(res.Changes, HeaderChange{Name: name, Before: st.before, After: shown})
		}
	}
	return res
}

// wipe zeroes the key material of the call.
func (c *call) wipe() {
	for _, k := range c.keys {
		clear(k.b)
	}
	c.keys = nil
	c.derived = nil
	c.touched = nil
}
