package policy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cordonsh/cordon/hostmatch"
)

// SecretKind says where a secret's value is read from.
type SecretKind string

// The secret kinds.
const (
	SecretEnv  SecretKind = "env"  // an environment variable of cordon's own environment
	SecretFile SecretKind = "file" // a file's contents, without a trailing newline
	SecretCmd  SecretKind = "cmd"  // a command's standard output, run outside the sandbox
)

// Secret is one entry of the [secrets] table: where cordon reads a secret before the command
// starts. This package never reads the value itself.
type Secret struct {
	Name string
	Kind SecretKind
	// Ref is the variable name, the absolute file path, or the command line (run with
	// /bin/sh -c).
	Ref string
	// Optional makes a missing secret skip the rules that use it (with a note) instead of
	// failing the run. Defaults to false.
	Optional bool
}

// String returns the secret's source as written, such as "env:GITHUB_TOKEN"; never a value.
func (s Secret) String() string { return string(s.Kind) + ":" + s.Ref }

// Credential is one [[credential]] rule: the proxy sets Header to Value (with "{secret}"
// replaced by the secret) on every request to Hosts, replacing any copy the command sent.
type Credential struct {
	Hosts  []hostmatch.Pattern
	Header string
	// Value is the header's value; "{secret}" stands for the secret. Defaults to "{secret}".
	Value  string
	Secret string
	// AllowPlainHTTP lets the credential go over plain HTTP. Defaults to false: it is added
	// only to requests that leave cordon over TLS.
	AllowPlainHTTP bool
}

// Upstream is one [[upstream]] route: a listener inside the sandbox whose address is given to
// the command in Env, forwarded by cordon to URL with Credential added.
type Upstream struct {
	Name string
	// URL is the upstream's base URL, https unless AllowPlainHTTP.
	URL string
	// Env is the environment variable set to the route's local URL, such as
	// "ANTHROPIC_BASE_URL".
	Env string
	// Credential is added to every request; nil for none.
	Credential *UpstreamCredential
	// Placeholders are environment variables set for the command so that clients which insist
	// on a key start, e.g. ANTHROPIC_API_KEY = "cordon-placeholder". The proxy removes
	// whatever the client sends in Credential.Header. Defaults to none.
	Placeholders map[string]string
	// AllowPlainHTTP allows an http:// URL. Defaults to false.
	AllowPlainHTTP bool
}

// UpstreamCredential is the header an upstream route adds.
type UpstreamCredential struct {
	Header string
	Value  string // template with "{secret}"; defaults to "{secret}"
	Secret string
}

// Plugin is one [[plugin]] entry: a WebAssembly module applied to requests to Hosts.
type Plugin struct {
	Name string
	// Path is the .wasm file.
	Path string
	// Hosts are the request hosts the plugin applies to; its secrets reach only these.
	Hosts []hostmatch.Pattern
	// Secrets names the [secrets] entries the plugin may use. Defaults to none.
	Secrets []string
	// Config is the plugin's configuration table. Defaults to empty.
	Config map[string]string
	// Timeout limits each call into the plugin; 0 means the plugin host's default (100ms).
	Timeout time.Duration
	// MemoryLimit limits the plugin's memory in bytes; 0 means the plugin host's default
	// (32 MiB).
	MemoryLimit uint64
}

// TOML layout of the credential tables.

// secretSpec is a [secrets] value: "env:NAME", "file:PATH", "cmd:COMMAND", or a table
// { from = "...", optional = true }.
type secretSpec struct {
	from     string
	optional bool
}

func (s *secretSpec) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		s.from = v
	case map[string]any:
		for k, val := range v {
			switch k {
			case "from":
				str, ok := val.(string)
				if !ok {
					return errors.New(`"from" must be a string such as "env:NAME"`)
				}
				s.from = str
			case "optional":
				b, ok := val.(bool)
				if !ok {
					return errors.New(`"optional" must be true or false`)
				}
				s.optional = b
			default:
				return fmt.Errorf("unknown key %q in secret (want \"from\" and \"optional\")", k)
			}
		}
		if s.from == "" {
			return errors.New(`a secret table needs "from", such as { from = "env:NAME", optional = true }`)
		}
	default:
		return errors.New(`a secret is "env:NAME", "file:PATH", "cmd:COMMAND" or { from = "...", optional = true }`)
	}
	_, _, err := parseSecretRef(s.from)
	return err
}

func parseSecretRef(s string) (SecretKind, string, error) {
	kind, ref, ok := strings.Cut(s, ":")
	if !ok || ref == "" {
		return "", "", fmt.Errorf("%q: a secret is \"env:NAME\", \"file:PATH\" or \"cmd:COMMAND\"", s)
	}
	switch SecretKind(kind) {
	case SecretEnv:
		if !validEnvName(ref) {
			return "", "", fmt.Errorf("%q: %q is not an environment variable name", s, ref)
		}
	case SecretFile, SecretCmd:
	default:
		return "", "", fmt.Errorf("%q: unknown secret source %q (want env, file or cmd)", s, kind)
	}
	return SecretKind(kind), ref, nil
}

type credFileV1 struct {
	Hosts          []pattern `toml:"hosts"`
	Header         string    `toml:"header"`
	Value          *string   `toml:"value"`
	Secret         string    `toml:"secret"`
	AllowPlainHTTP bool      `toml:"allow_plain_http"`
}

type upstreamCredFileV1 struct {
	Header string  `toml:"header"`
	Value  *string `toml:"value"`
	Secret string  `toml:"secret"`
}

type upstreamFileV1 struct {
	Name           string              `toml:"name"`
	URL            string              `toml:"url"`
	Env            string              `toml:"env"`
	Credential     *upstreamCredFileV1 `toml:"credential"`
	Placeholders   map[string]string   `toml:"placeholders"`
	AllowPlainHTTP bool                `toml:"allow_plain_http"`
}

type pluginFileV1 struct {
	Name        string            `toml:"name"`
	Path        string            `toml:"path"`
	Hosts       []pattern         `toml:"hosts"`
	Secrets     []string          `toml:"secrets"`
	Config      map[string]string `toml:"config"`
	Timeout     *duration         `toml:"timeout"`
	MemoryLimit *byteSize         `toml:"memory_limit"`
}

// byteSize is a size written as "32MiB", "512KiB", "1GiB" or a number of bytes.
type byteSize uint64

func (b *byteSize) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v <= 0 {
			return fmt.Errorf("%d must be positive", v)
		}
		*b = byteSize(v)
		return nil
	case string:
		s := strings.TrimSpace(v)
		mult := uint64(1)
		for _, u := range []struct {
			suffix string
			mult   uint64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
			if strings.HasSuffix(s, u.suffix) {
				s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
				break
			}
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 || n > (1<<40)/mult {
			return fmt.Errorf("%q is not a size such as \"32MiB\"", v)
		}
		*b = byteSize(n * mult)
		return nil
	}
	return errors.New(`a size is a number of bytes or a string such as "32MiB"`)
}

// The name checks are written out rather than compiled from regular expressions: package
// initialization is paid by every cordon start, twice per run.

// validEnvName reports whether s matches [A-Za-z_][A-Za-z0-9_]*.
func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validName reports whether s matches [A-Za-z0-9][A-Za-z0-9_.-]{0,63}.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '_' || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '_' || c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+.^_`|~-", c) >= 0) {
			return false
		}
	}
	return true
}

// Headers a credential may not set: the proxy owns them.
var reservedHeaders = []string{
	"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
	"upgrade", "proxy-authorization", "proxy-authenticate", "proxy-connection",
}

// Variables the runtime sets itself; an upstream may not claim them.
var reservedEnv = []string{
	"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
	"all_proxy", "no_proxy", "TMPDIR", "PATH", "HOME",
}

func checkHeader(h string) error {
	if !validHeaderName(h) {
		return fmt.Errorf("%q is not a header name", h)
	}
	if slices.Contains(reservedHeaders, strings.ToLower(h)) {
		return fmt.Errorf("header %q is managed by the proxy and cannot carry a credential", h)
	}
	return nil
}

func checkTemplate(v string) error {
	if strings.Count(v, "{secret}") != 1 {
		return fmt.Errorf("value %q must contain \"{secret}\" exactly once", v)
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("value %q contains a line break or NUL", v)
	}
	return nil
}

func checkCredentialHosts(hosts []pattern) error {
	if len(hosts) == 0 {
		return errors.New("hosts is required: the hosts this credential may be sent to")
	}
	for _, h := range hosts {
		if err := h.CheckAllow(); err != nil {
			return fmt.Errorf("%v; a secret must be bound to named hosts", err)
		}
	}
	return nil
}

// checkUpstreamURL validates an upstream base URL and returns it in canonical form.
func checkUpstreamURL(raw string, plain bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// The parser's message repeats the URL, which may hold a password: do not echo it.
		return "", errors.New("not a valid URL")
	}
	if u.User != nil {
		return "", fmt.Errorf("%q: an upstream URL may not carry user info; put the credential in [upstream.credential]", u.Redacted())
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && plain:
	case u.Scheme == "http":
		return "", fmt.Errorf("%q is plain HTTP; use https, or set allow_plain_http = true", raw)
	default:
		return "", fmt.Errorf("%q: the scheme must be https", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("%q: an upstream URL has no query or fragment", raw)
	}
	host, err := hostmatch.Canonical(u.Hostname())
	if err != nil {
		return "", fmt.Errorf("%q: %v", raw, err)
	}
	if p := u.Port(); p != "" {
		if _, err := hostmatch.ParsePort(p); err != nil {
			return "", fmt.Errorf("%q: %v", raw, err)
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		host += ":" + p
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	u.Host = host
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u.String(), nil
}

// resolveCredentials validates one layer's credential tables and expands plugin paths.
func resolveCredentials(f *fileV1, env Env, fail func(key, msg string, err error) error) error {
	for name, spec := range f.Secrets {
		if !validName(name) {
			return fail("secrets."+name, fmt.Sprintf("%q is not a secret name (letters, digits, \"_\", \".\", \"-\")", name), nil)
		}
		if kind, ref, _ := parseSecretRef(spec.from); kind == SecretFile {
			abs, err := ExpandPath(ref, env, false)
			if err != nil {
				return fail("secrets."+name, err.Error(), err)
			}
			spec.from = string(kind) + ":" + abs
			f.Secrets[name] = spec
		}
	}
	for i := range f.Credentials {
		c := &f.Credentials[i]
		key := fmt.Sprintf("credential[%d].", i)
		if err := checkCredentialHosts(c.Hosts); err != nil {
			return fail(key+"hosts", err.Error(), err)
		}
		if err := checkHeader(c.Header); err != nil {
			return fail(key+"header", err.Error(), err)
		}
		if c.Value != nil {
			if err := checkTemplate(*c.Value); err != nil {
				return fail(key+"value", err.Error(), err)
			}
		}
		if c.Secret == "" {
			return fail(key+"secret", "required: the name of a [secrets] entry", nil)
		}
	}
	names := map[string]bool{}
	for i := range f.Upstreams {
		u := &f.Upstreams[i]
		key := fmt.Sprintf("upstream[%d].", i)
		if !validName(u.Name) {
			return fail(key+"name", fmt.Sprintf("%q is not a name (letters, digits, \"_\", \".\", \"-\")", u.Name), nil)
		}
		if names[u.Name] {
			return fail(key+"name", fmt.Sprintf("upstream %q is defined twice", u.Name), nil)
		}
		names[u.Name] = true
		canon, err := checkUpstreamURL(u.URL, u.AllowPlainHTTP)
		if err != nil {
			return fail(key+"url", err.Error(), err)
		}
		u.URL = canon
		if err := checkEnvName(u.Env); err != nil {
			return fail(key+"env", err.Error(), err)
		}
		if c := u.Credential; c != nil {
			if err := checkHeader(c.Header); err != nil {
				return fail(key+"credential", err.Error(), err)
			}
			if c.Value != nil {
				if err := checkTemplate(*c.Value); err != nil {
					return fail(key+"credential", err.Error(), err)
				}
			}
			if c.Secret == "" {
				return fail(key+"credential", "secret is required: the name of a [secrets] entry", nil)
			}
		}
		for name, v := range u.Placeholders {
			if err := checkEnvName(name); err != nil {
				return fail(key+"placeholders", err.Error(), err)
			}
			if strings.ContainsRune(v, 0) {
				return fail(key+"placeholders", fmt.Sprintf("the value of %s contains a NUL byte", name), nil)
			}
		}
	}
	names = map[string]bool{}
	for i := range f.Plugins {
		pl := &f.Plugins[i]
		key := fmt.Sprintf("plugin[%d].", i)
		if !validName(pl.Name) {
			return fail(key+"name", fmt.Sprintf("%q is not a name (letters, digits, \"_\", \".\", \"-\")", pl.Name), nil)
		}
		if names[pl.Name] {
			return fail(key+"name", fmt.Sprintf("plugin %q is defined twice", pl.Name), nil)
		}
		names[pl.Name] = true
		if pl.Path == "" {
			return fail(key+"path", "required: the plugin's .wasm file", nil)
		}
		abs, err := ExpandPath(pl.Path, env, false)
		if err != nil {
			return fail(key+"path", err.Error(), err)
		}
		pl.Path = abs
		if err := checkCredentialHosts(pl.Hosts); err != nil {
			return fail(key+"hosts", err.Error(), err)
		}
		if pl.Timeout != nil && (time.Duration(*pl.Timeout) < time.Millisecond || time.Duration(*pl.Timeout) > time.Minute) {
			return fail(key+"timeout", "must be between 1ms and 1m", nil)
		}
		if pl.MemoryLimit != nil && (*pl.MemoryLimit < 4<<20 || *pl.MemoryLimit > 1<<30) {
			return fail(key+"memory_limit", "must be between 4MiB and 1GiB", nil)
		}
	}
	return nil
}

func checkEnvName(name string) error {
	if !validEnvName(name) {
		return fmt.Errorf("%q is not an environment variable name", name)
	}
	if slices.Contains(reservedEnv, name) {
		return fmt.Errorf("%s is set by cordon itself", name)
	}
	return nil
}

// mergeCredentials folds one layer's credential tables into p: secrets, upstreams and plugins
// of the same name are replaced by the later layer; credential rules accumulate.
func mergeCredentials(p *Policy, f *fileV1) {
	for _, name := range sortedKeys(f.Secrets) {
		spec := f.Secrets[name]
		kind, ref, _ := parseSecretRef(spec.from)
		s := Secret{Name: name, Kind: kind, Ref: ref, Optional: spec.optional}
		if i := slices.IndexFunc(p.Secrets, func(x Secret) bool { return x.Name == name }); i >= 0 {
			p.Secrets[i] = s
		} else {
			p.Secrets = append(p.Secrets, s)
		}
	}
	for _, c := range f.Credentials {
		value := "{secret}"
		if c.Value != nil {
			value = *c.Value
		}
		p.Credentials = append(p.Credentials, Credential{
			Hosts: unwrapPatterns(c.Hosts), Header: c.Header, Value: value, Secret: c.Secret,
			AllowPlainHTTP: c.AllowPlainHTTP,
		})
	}
	for _, u := range f.Upstreams {
		up := Upstream{Name: u.Name, URL: u.URL, Env: u.Env, Placeholders: u.Placeholders, AllowPlainHTTP: u.AllowPlainHTTP}
		if c := u.Credential; c != nil {
			value := "{secret}"
			if c.Value != nil {
				value = *c.Value
			}
			up.Credential = &UpstreamCredential{Header: c.Header, Value: value, Secret: c.Secret}
		}
		if i := slices.IndexFunc(p.Upstreams, func(x Upstream) bool { return x.Name == u.Name }); i >= 0 {
			p.Upstreams[i] = up
		} else {
			p.Upstreams = append(p.Upstreams, up)
		}
	}
	for _, pl := range f.Plugins {
		plug := Plugin{Name: pl.Name, Path: pl.Path, Hosts: unwrapPatterns(pl.Hosts), Secrets: pl.Secrets, Config: pl.Config}
		if pl.Timeout != nil {
			plug.Timeout = time.Duration(*pl.Timeout)
		}
		if pl.MemoryLimit != nil {
			plug.MemoryLimit = uint64(*pl.MemoryLimit)
		}
		if i := slices.IndexFunc(p.Plugins, func(x Plugin) bool { return x.Name == pl.Name }); i >= 0 {
			p.Plugins[i] = plug
		} else {
			p.Plugins = append(p.Plugins, plug)
		}
	}
}

// checkReferences checks what only the merged policy can tell: every secret a rule names is
// defined, and no two upstreams claim the same variable.
func (l *loader) checkReferences(p *Policy) error {
	defined := func(name string) bool {
		return slices.ContainsFunc(p.Secrets, func(s Secret) bool { return s.Name == name })
	}
	envs := map[string]string{}
	for _, ly := range l.layers {
		f := ly.f
		fail := func(key, msg string) error {
			e := &Error{File: ly.name, Key: key, Msg: msg}
			e.Line, e.Col = ly.pos(key)
			return e
		}
		for i, c := range f.Credentials {
			if !defined(c.Secret) {
				return fail(fmt.Sprintf("credential[%d].secret", i), fmt.Sprintf("secret %q is not defined in [secrets]", c.Secret))
			}
		}
		for i, u := range f.Upstreams {
			if u.Credential != nil && !defined(u.Credential.Secret) {
				return fail(fmt.Sprintf("upstream[%d].credential", i), fmt.Sprintf("secret %q is not defined in [secrets]", u.Credential.Secret))
			}
			if other, ok := envs[u.Env]; ok && other != u.Name {
				return fail(fmt.Sprintf("upstream[%d].env", i), fmt.Sprintf("%s is already set by upstream %q", u.Env, other))
			}
			envs[u.Env] = u.Name
		}
		for i, pl := range f.Plugins {
			for _, s := range pl.Secrets {
				if !defined(s) {
					return fail(fmt.Sprintf("plugin[%d].secrets", i), fmt.Sprintf("secret %q is not defined in [secrets]", s))
				}
			}
		}
	}
	return nil
}

func unwrapPatterns(ps []pattern) []hostmatch.Pattern {
	out := make([]hostmatch.Pattern, len(ps))
	for i, p := range ps {
		out[i] = p.Pattern
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
