package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/cordonsh/cordon/hostmatch"
)

// DefaultFile is the policy file used when none is named and it exists in the working
// directory.
const DefaultFile = "cordon.toml"

// Env is what path expansion needs to know about the machine.
type Env struct {
	// Home is the home directory that "~" stands for; if empty, a path with "~" is an error.
	Home string
	// Cwd is the working directory that "." and relative paths are resolved against. It must
	// be absolute.
	Cwd string
}

// Flags are the command-line overrides, the last layer merged.
type Flags struct {
	AllowDomains []string // --allow-domain: added to network.allow
	AllowRead    []string // --allow-read: added to filesystem.allow_read
	AllowWrite   []string // --allow-write: added to filesystem.allow_write
	Mode         string   // --mode: sets sandbox.mode
}

// Options says where a policy comes from.
type Options struct {
	// File is the policy file (TOML, or sandbox-runtime JSON settings). If empty, DefaultFile
	// in Env.Cwd is used when it exists.
	File string
	// Presets are merged first, before the presets that the file names itself. If no preset
	// and no file is given, the "default" preset is used.
	Presets []string
	// Flags are merged last.
	Flags Flags
	// Env resolves "~" and relative paths.
	Env Env
	// Discovered, if set, is called with the path and contents of DefaultFile when it was
	// found in the working directory rather than named in File; an error stops the load.
	// The CLI uses it to refuse project files the user has not trusted.
	Discovered func(path string, data []byte) error
}

// Load reads, merges and validates a policy. Errors wrap ErrInvalid (as an *Error that names
// the file, line and key) or the error from reading the file.
func Load(opts Options) (*Policy, error) {
	if !filepath.IsAbs(opts.Env.Cwd) {
		return nil, fmt.Errorf("policy: working directory %q is not absolute", opts.Env.Cwd)
	}
	l := loader{env: opts.Env, seen: map[string]bool{}}
	for _, name := range opts.Presets {
		if err := l.addPreset(name, "--preset"); err != nil {
			return nil, err
		}
	}
	file, discovered := opts.File, false
	if file == "" {
		candidate := filepath.Join(opts.Env.Cwd, DefaultFile)
		if _, err := os.Stat(candidate); err == nil {
			file, discovered = candidate, true
		}
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("policy file %s does not exist", file)
			}
			return nil, fmt.Errorf("read policy file: %w", err)
		}
		abs := file
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(opts.Env.Cwd, abs)
		}
		l.policyFile = filepath.Clean(abs)
		if discovered && opts.Discovered != nil {
			if err := opts.Discovered(l.policyFile, data); err != nil {
				return nil, err
			}
		}
		if err := l.addSource(file, data); err != nil {
			return nil, err
		}
	}
	if len(l.layers) == 0 {
		if err := l.addPreset("default", ""); err != nil {
			return nil, err
		}
	}
	if err := l.addFlags(opts.Flags); err != nil {
		return nil, err
	}
	return l.merge()
}

// Parse reads one policy file's bytes (TOML, or sandbox-runtime JSON) as the only layer,
// with the presets it names. name is used in errors. It is Load without the filesystem.
func Parse(name string, data []byte, env Env) (*Policy, error) {
	if !filepath.IsAbs(env.Cwd) {
		return nil, fmt.Errorf("policy: working directory %q is not absolute", env.Cwd)
	}
	l := loader{env: env, seen: map[string]bool{}}
	if err := l.addSource(name, data); err != nil {
		return nil, err
	}
	return l.merge()
}

type layer struct {
	name string
	f    *fileV1
	pos  posFunc
}

// posFunc returns the line and column of a dotted key such as "network.allow" or
// "credential[1].hosts" in a layer's source; 0, 0 where unknown.
type posFunc func(key string) (line, col int)

func noPos(string) (int, int) { return 0, 0 }

func tomlPos(md toml.MetaData, data []byte) posFunc {
	return func(key string) (int, int) {
		if table, rest, ok := strings.Cut(key, "["); ok {
			idxStr, sub, _ := strings.Cut(rest, "].")
			idx, _ := strconv.Atoi(idxStr)
			return arrayTablePos(data, table, idx, sub)
		}
		return keyPos(md, data, toml.Key(strings.Split(key, ".")))
	}
}

type loader struct {
	env        Env
	layers     []layer
	seen       map[string]bool // presets already merged
	policyFile string
	notes      []string
}

// addSource decodes a file's bytes, TOML or JSON, and adds its presets and itself.
func (l *loader) addSource(name string, data []byte) error {
	if strings.HasSuffix(name, ".json") || isJSON(data) {
		f, notes, err := fromSRT(name, data)
		if err != nil {
			return err
		}
		l.notes = append(l.notes, notes...)
		if err := resolveLayer(name, f, noPos, l.env); err != nil {
			return err
		}
		l.layers = append(l.layers, layer{name, f, noPos})
		return nil
	}
	f, md, err := decodeTOML(name, data)
	if err != nil {
		return err
	}
	for _, p := range f.Presets {
		if err := l.addPreset(p, name); err != nil {
			line, col := keyPos(md, data, toml.Key{"presets"})
			return &Error{File: name, Line: line, Col: col, Key: "presets", Msg: err.Error(), Err: err}
		}
	}
	pos := tomlPos(md, data)
	if err := resolveLayer(name, f, pos, l.env); err != nil {
		return err
	}
	l.layers = append(l.layers, layer{name, f, pos})
	return nil
}

func (l *loader) addPreset(name, from string) error {
	if l.seen[name] {
		return nil
	}
	data, ok := presetFile(name)
	if !ok {
		err := fmt.Errorf("%w %q (known: %s)", ErrNoPreset, name, strings.Join(PresetNames(), ", "))
		if from == "--preset" {
			return &Error{File: "flags", Key: "--preset", Msg: err.Error(), Err: err}
		}
		return err
	}
	l.seen[name] = true
	return l.addSource("preset "+name, data)
}

func (l *loader) addFlags(fl Flags) error {
	f := &fileV1{}
	for _, d := range fl.AllowDomains {
		p, err := hostmatch.Parse(d)
		if err != nil {
			return &Error{File: "flags", Key: "--allow-domain", Msg: err.Error(), Err: err}
		}
		f.Network.Allow = append(f.Network.Allow, pattern{p})
	}
	f.Filesystem.AllowRead = fl.AllowRead
	f.Filesystem.AllowWrite = fl.AllowWrite
	if fl.Mode != "" {
		var m mode
		if err := m.UnmarshalText([]byte(fl.Mode)); err != nil {
			return &Error{File: "flags", Key: "--mode", Msg: err.Error(), Err: err}
		}
		f.Sandbox.Mode = &m
	}
	if err := resolveLayer("flags", f, noPos, l.env); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			pe.Key = map[string]string{
				"network.allow": "--allow-domain", "filesystem.allow_read": "--allow-read",
				"filesystem.allow_write": "--allow-write",
			}[pe.Key]
		}
		return err
	}
	if len(fl.AllowDomains)+len(fl.AllowRead)+len(fl.AllowWrite) > 0 || fl.Mode != "" {
		l.layers = append(l.layers, layer{"flags", f, noPos})
	}
	return nil
}

// resolveLayer validates one layer and expands its paths in place; pos gives error positions.
func resolveLayer(name string, f *fileV1, pos posFunc, env Env) error {
	fail := func(key, msg string, err error) error {
		e := &Error{File: name, Key: key, Msg: msg, Err: err}
		e.Line, e.Col = pos(key)
		return e
	}
	paths := []struct {
		key  string
		list []string
		glob bool
	}{
		{"filesystem.allow_read", f.Filesystem.AllowRead, false},
		{"filesystem.deny_read", f.Filesystem.DenyRead, true},
		{"filesystem.allow_write", f.Filesystem.AllowWrite, false},
		{"filesystem.deny_write", f.Filesystem.DenyWrite, true},
		{"network.allow_unix_sockets", f.Network.AllowUnixSockets, false},
	}
	for _, pl := range paths {
		for i, p := range pl.list {
			abs, err := ExpandPath(p, env, pl.glob)
			if err != nil {
				return fail(pl.key, err.Error(), err)
			}
			pl.list[i] = abs
		}
	}
	if f.Audit.Log != nil {
		abs, err := ExpandPath(*f.Audit.Log, env, false)
		if err != nil {
			return fail("audit.log", err.Error(), err)
		}
		f.Audit.Log = &abs
	}
	for _, p := range f.Network.Allow {
		if err := p.CheckAllow(); err != nil {
			return fail("network.allow", err.Error()+"; name the hosts, or put the pattern in network.deny", err)
		}
	}
	for _, name := range f.Process.EnvDeny {
		if name == "" || strings.ContainsAny(name, "= \x00") {
			return fail("process.env_deny", fmt.Sprintf("%q is not a variable name pattern", name), nil)
		}
	}
	ints := []struct {
		key      string
		v        *int
		min, max int
	}{
		{"proxy.max_header_bytes", f.Proxy.MaxHeaderBytes, 1 << 10, 16 << 20},
		{"proxy.max_conns", f.Proxy.MaxConns, 1, 1 << 20},
		{"process.max_processes", f.Process.MaxProcesses, 0, 1 << 22},
	}
	for _, n := range ints {
		if n.v != nil && (*n.v < n.min || *n.v > n.max) {
			return fail(n.key, fmt.Sprintf("%d is out of range [%d, %d]", *n.v, n.min, n.max), nil)
		}
	}
	return resolveCredentials(f, env, fail)
}

// ExpandPath resolves a policy path: "~" and "~/..." against env.Home, relative paths
// (including ".") against env.Cwd. The result is absolute and clean. Glob characters
// ("*", "?", "[") are accepted only if glob is true, and must form a valid pattern.
func ExpandPath(p string, env Env, glob bool) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty path")
	case strings.ContainsRune(p, 0):
		return "", fmt.Errorf("path %q contains a NUL byte", p)
	}
	if strings.ContainsAny(p, "*?[") {
		if !glob {
			return "", fmt.Errorf("path %q: globs are allowed only in deny_read and deny_write", p)
		}
		if _, err := filepath.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
			return "", fmt.Errorf("path %q: bad glob: %v", p, err)
		}
	}
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		if env.Home == "" {
			return "", fmt.Errorf("path %q: the home directory is not known (HOME is not set)", p)
		}
		return filepath.Join(env.Home, p[1:]), nil
	case strings.HasPrefix(p, "~"):
		return "", fmt.Errorf("path %q: \"~user\" is not supported; write the path out", p)
	case filepath.IsAbs(p):
		return filepath.Clean(p), nil
	}
	return filepath.Join(env.Cwd, p), nil
}

// merge folds the layers into a Policy: lists are unions in order of first appearance,
// scalars come from the last layer that sets them, and defaults fill the rest.
func (l *loader) merge() (*Policy, error) {
	p := &Policy{
		Proxy: Proxy{
			MaxHeaderBytes: DefaultMaxHeaderBytes,
			HeaderTimeout:  DefaultHeaderTimeout,
			DialTimeout:    DefaultDialTimeout,
			IdleTimeout:    DefaultIdleTimeout,
			MaxConns:       DefaultMaxConns,
		},
		Process: Process{MaxProcesses: DefaultMaxProcesses},
		Sandbox: Sandbox{Mode: ModeAuto},
		Notes:   l.notes,
	}
	builtinWrite, builtinEnv := true, true
	for _, ly := range l.layers {
		f := ly.f
		p.Sources = append(p.Sources, ly.name)
		fs := &p.Filesystem
		fs.AllowRead = union(fs.AllowRead, f.Filesystem.AllowRead)
		fs.DenyRead = union(fs.DenyRead, f.Filesystem.DenyRead)
		fs.AllowWrite = union(fs.AllowWrite, f.Filesystem.AllowWrite)
		fs.DenyWrite = union(fs.DenyWrite, f.Filesystem.DenyWrite)
		set(&builtinWrite, f.Filesystem.BuiltinDenyWrite)

		n := &p.Network
		for _, a := range f.Network.Allow {
			n.Allow = unionPattern(n.Allow, a.Pattern)
		}
		for _, d := range f.Network.Deny {
			n.Deny = unionPattern(n.Deny, d.Pattern)
		}
		for _, a := range f.Network.AllowPrivate {
			if !slices.Contains(n.AllowPrivate, a.Prefix) {
				n.AllowPrivate = append(n.AllowPrivate, a.Prefix)
			}
		}
		n.AllowUnixSockets = union(n.AllowUnixSockets, f.Network.AllowUnixSockets)
		set(&n.AllowLocalBind, f.Network.AllowLocalBind)

		set(&p.Proxy.MaxHeaderBytes, f.Proxy.MaxHeaderBytes)
		setDuration(&p.Proxy.HeaderTimeout, f.Proxy.HeaderTimeout)
		setDuration(&p.Proxy.DialTimeout, f.Proxy.DialTimeout)
		setDuration(&p.Proxy.IdleTimeout, f.Proxy.IdleTimeout)
		set(&p.Proxy.MaxConns, f.Proxy.MaxConns)

		p.Process.EnvDeny = union(p.Process.EnvDeny, f.Process.EnvDeny)
		set(&builtinEnv, f.Process.BuiltinEnvDeny)
		set(&p.Process.MaxProcesses, f.Process.MaxProcesses)

		if f.Sandbox.Mode != nil {
			p.Sandbox.Mode = Mode(*f.Sandbox.Mode)
		}
		set(&p.Sandbox.AllowFallback, f.Sandbox.AllowFallback)
		set(&p.Sandbox.BestEffort, f.Sandbox.BestEffort)
		set(&p.Sandbox.AllowNested, f.Sandbox.AllowNested)
		set(&p.Audit.Log, f.Audit.Log)
		mergeCredentials(p, f)
	}
	if builtinWrite {
		p.Filesystem.BuiltinDenyWrite = BuiltinDenyWrite(l.env.Home, l.env.Cwd)
		if l.policyFile != "" {
			p.Filesystem.BuiltinDenyWrite = union(p.Filesystem.BuiltinDenyWrite, []string{l.policyFile})
		}
	}
	if builtinEnv {
		p.Process.BuiltinEnvDeny = slices.Clone(BuiltinEnvDeny)
	}
	if err := l.checkReferences(p); err != nil {
		return nil, err
	}
	return p, nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func setDuration[T ~int64](dst *T, v *duration) {
	if v != nil {
		*dst = T(*v)
	}
}

func union(dst, add []string) []string {
	for _, s := range add {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

func unionPattern(dst []hostmatch.Pattern, p hostmatch.Pattern) []hostmatch.Pattern {
	for _, q := range dst {
		if q.String() == p.String() {
			return dst
		}
	}
	return append(dst, p)
}

func isJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n\ufeff")
	return len(t) > 0 && t[0] == '{'
}
