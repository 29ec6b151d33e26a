package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cordonsh/cordon/hostmatch"
)

// fileV1 is the TOML layout of a policy file, version 1. Pointers tell "not set" from a zero
// value, so that a later layer overrides only what it sets. It is the format only; [Load]
// turns merged layers into a [Policy].
type fileV1 struct {
	Version    *int        `toml:"version"`
	Presets    []string    `toml:"presets"`
	Filesystem fsFileV1    `toml:"filesystem"`
	Network    netFileV1   `toml:"network"`
	Proxy      proxyFileV1 `toml:"proxy"`
	Process    procFileV1  `toml:"process"`
	Sandbox    sboxFileV1  `toml:"sandbox"`
	Audit      auditFileV1 `toml:"audit"`

	Secrets     map[string]secretSpec `toml:"secrets"`
	Credentials []credFileV1          `toml:"credential"`
	Upstreams   []upstreamFileV1      `toml:"upstream"`
	Plugins     []pluginFileV1        `toml:"plugin"`
}

type fsFileV1 struct {
	AllowRead        []string `toml:"allow_read"`
	DenyRead         []string `toml:"deny_read"`
	AllowWrite       []string `toml:"allow_write"`
	DenyWrite        []string `toml:"deny_write"`
	BuiltinDenyWrite *bool    `toml:"builtin_deny_write"`
}

type netFileV1 struct {
	Allow            []pattern `toml:"allow"`
	Deny             []pattern `toml:"deny"`
	AllowPrivate     []prefix  `toml:"allow_private"`
	AllowUnixSockets []string  `toml:"allow_unix_sockets"`
	AllowLocalBind   *bool     `toml:"allow_local_bind"`
}

type proxyFileV1 struct {
	MaxHeaderBytes *int      `toml:"max_header_bytes"`
	HeaderTimeout  *duration `toml:"header_timeout"`
	DialTimeout    *duration `toml:"dial_timeout"`
	IdleTimeout    *duration `toml:"idle_timeout"`
	MaxConns       *int      `toml:"max_conns"`
}

type procFileV1 struct {
	EnvDeny        []string `toml:"env_deny"`
	BuiltinEnvDeny *bool    `toml:"builtin_env_deny"`
	MaxProcesses   *int     `toml:"max_processes"`
}

type sboxFileV1 struct {
	Mode          *mode `toml:"mode"`
	AllowFallback *bool `toml:"allow_fallback"`
	BestEffort    *bool `toml:"best_effort"`
	AllowNested   *bool `toml:"allow_nested"`
}

type auditFileV1 struct {
	Log *string `toml:"log"`
}

// pattern is a hostmatch.Pattern that decodes itself from a TOML string, so that a bad
// pattern is reported with its line and key by the decoder.
type pattern struct{ hostmatch.Pattern }

func (p *pattern) UnmarshalText(b []byte) error {
	v, err := hostmatch.Parse(string(b))
	p.Pattern = v
	return err
}

// prefix is an address range written as a CIDR ("10.0.0.0/8") or a single address.
type prefix struct{ netip.Prefix }

func (p *prefix) UnmarshalText(b []byte) error {
	s := string(b)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%q is neither an address nor a CIDR range", s)
		}
		p.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		return nil
	}
	v, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("%q is not a CIDR range: %v", s, err)
	}
	if v.Masked() != v {
		return fmt.Errorf("%q has host bits set; did you mean %q?", s, v.Masked())
	}
	p.Prefix = v
	return nil
}

// duration is a time.Duration written as a Go duration string such as "30s" or "5m".
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\" or \"5m\"", b)
	}
	if v <= 0 {
		return fmt.Errorf("%q must be positive", b)
	}
	*d = duration(v)
	return nil
}

type mode Mode

func (m *mode) UnmarshalText(b []byte) error {
	switch v := Mode(b); v {
	case ModeAuto, ModeNamespace, ModeFallback:
		*m = mode(v)
		return nil
	}
	return fmt.Errorf("%q is not a mode: use %q, %q or %q", b, ModeAuto, ModeNamespace, ModeFallback)
}

// decodeTOML decodes one policy file strictly: syntax errors, wrong types, invalid values,
// unknown keys and a missing or wrong version are errors that name the line and the key.
func decodeTOML(name string, data []byte) (*fileV1, toml.MetaData, error) {
	var f fileV1
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, md, tomlError(name, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		k := undec[0]
		line, col := keyPos(md, data, k)
		return nil, md, &Error{File: name, Line: line, Col: col, Key: k.String(),
			Msg: "unknown key" + suggest(k)}
	}
	if f.Version == nil {
		return nil, md, &Error{File: name, Line: 1, Key: "version",
			Msg: fmt.Sprintf("missing; the first line of a policy file must be \"version = %d\"", Version)}
	}
	if *f.Version != Version {
		line, col := keyPos(md, data, toml.Key{"version"})
		return nil, md, &Error{File: name, Line: line, Col: col, Key: "version",
			Msg: fmt.Sprintf("version %d is not supported; this cordon reads version %d", *f.Version, Version)}
	}
	return &f, md, nil
}

// Compiled on first use, not at package initialization (every cordon start pays for that).
var (
	typeRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^incompatible types: TOML value has type (\S+); destination has type (\S+)$`)
	})
	lastKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`) })
)

// tomlError turns an error from the TOML decoder into an *Error with the line and key.
func tomlError(name string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.Usage != "" {
			msg += " (" + strings.TrimSpace(strings.SplitN(pe.Usage, "\n", 2)[0]) + ")"
		}
		return &Error{File: name, Line: pe.Position.Line, Col: pe.Position.Col, Key: pe.LastKey, Msg: msg, Err: err}
	}
	if m := lastKeyRE().FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg := m[3]
		if t := typeRE().FindStringSubmatch(msg); t != nil {
			want := map[string]string{"boolean": "true or false", "slice": "a list", "string": "a string",
				"integer": "an integer", "struct": "a table", "map": "a table"}[t[2]]
			if want == "" {
				want = t[2]
			}
			msg = fmt.Sprintf("wrong type: want %s, got a TOML %s", want, strings.ToLower(t[1]))
		}
		return &Error{File: name, Line: line, Key: m[2], Msg: msg, Err: err}
	}
	return &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: "), Err: err}
}

// keyPos returns the 1-based line and column where key is defined, or 0, 0 if unknown.
// BurntSushi/toml records the position of every key but does not export it; it is read with
// reflection, and a test pins this to the module version in go.mod.
func keyPos(md toml.MetaData, data []byte, key toml.Key) (line, col int) {
	defer func() {
		if recover() != nil {
			line, col = 0, 0
		}
	}()
	ki := reflect.ValueOf(md).FieldByName("keyInfo")
	if !ki.IsValid() || ki.Kind() != reflect.Map {
		return 0, 0
	}
	v := ki.MapIndex(reflect.ValueOf(key.String()))
	if !v.IsValid() {
		return 0, 0
	}
	pos := v.FieldByName("pos")
	line = int(pos.FieldByName("Line").Int())
	// The recorded offset is the value's; point at the key itself where the line shows it.
	start := int(pos.FieldByName("Start").Int())
	if start >= 0 && start <= len(data) {
		col = start - strings.LastIndexByte(string(data[:start]), '\n')
	}
	if lines := strings.Split(string(data), "\n"); line >= 1 && line <= len(lines) {
		if i := strings.Index(lines[line-1], key[len(key)-1]); i >= 0 {
			col = i + 1
		}
	}
	return line, col
}

// arrayTablePos returns the line and column of key inside the index-th [[table]] of data, or
// of the table header itself if the key is not written there; 0, 0 if not found.
func arrayTablePos(data []byte, table string, index int, key string) (int, int) {
	lines := strings.Split(string(data), "\n")
	header := regexp.MustCompile(`^\s*\[\[\s*` + regexp.QuoteMeta(table) + `\s*\]\]`)
	n := -1
	for i, l := range lines {
		if !header.MatchString(l) {
			continue
		}
		n++
		if n != index {
			continue
		}
		first := strings.SplitN(key, ".", 2)[0]
		for j := i + 1; j < len(lines); j++ {
			t := strings.TrimSpace(lines[j])
			if strings.HasPrefix(t, "[") && !strings.HasPrefix(t, "["+table+".") {
				break
			}
			if strings.HasPrefix(t, first+" ") || strings.HasPrefix(t, first+"=") || strings.HasPrefix(t, "["+table+"."+first+"]") {
				return j + 1, strings.Index(lines[j], t[:1]) + 1
			}
		}
		return i + 1, 1
	}
	return 0, 0
}

// knownKeys lists every key of the format, for "did you mean" hints on unknown keys.
var knownKeys = sync.OnceValue(func() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := prefix + strings.Split(f.Tag.Get("toml"), ",")[0]
			t := f.Type
			for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() == reflect.Struct && t.Name() != "pattern" && t.Name() != "prefix" && t.Name() != "secretSpec" {
				keys = append(keys, name)
				walk(name+".", t)
				continue
			}
			keys = append(keys, name)
		}
	}
	walk("", reflect.TypeOf(fileV1{}))
	return keys
})

// suggest returns a hint naming the known key closest to k, if one is close.
func suggest(k toml.Key) string {
	want := k.String()
	best, bestD := "", 4
	for _, known := range knownKeys() {
		if d := editDistance(want, known); d < bestD {
			best, bestD = known, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
