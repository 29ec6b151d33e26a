package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cordonsh/cordon/hostmatch"
)

// Format writes the effective policy as a version 1 policy file, with comments that name its
// sources, the built-in lists in force and the defaults. Loading the output gives the same
// policy (the built-in lists are written as comments and come back from the switches).
func Format(p *Policy) string {
	var w tomlWriter
	w.comment("Effective cordon policy, merged from: " + strings.Join(p.Sources, ", ") + ".")
	for _, n := range p.Notes {
		w.comment("note: " + n)
	}
	w.line("version = %d", Version)

	w.table("filesystem")
	w.list("allow_read", p.Filesystem.AllowRead)
	w.list("deny_read", p.Filesystem.DenyRead)
	w.list("allow_write", p.Filesystem.AllowWrite)
	w.list("deny_write", p.Filesystem.DenyWrite)
	w.boolean("builtin_deny_write", p.Filesystem.BuiltinDenyWrite != nil)
	if len(p.Filesystem.BuiltinDenyWrite) > 0 {
		w.comment("built-in write-deny list, enforced like deny_write:")
		for _, s := range p.Filesystem.BuiltinDenyWrite {
			w.comment("  " + s)
		}
	}

	w.table("network")
	w.list("allow", patternStrings(p.Network.Allow))
	w.list("deny", patternStrings(p.Network.Deny))
	var priv []string
	for _, pr := range p.Network.AllowPrivate {
		priv = append(priv, pr.String())
	}
	w.list("allow_private", priv)
	w.list("allow_unix_sockets", p.Network.AllowUnixSockets)
	w.boolean("allow_local_bind", p.Network.AllowLocalBind)

	w.table("proxy")
	w.line("max_header_bytes = %d", p.Proxy.MaxHeaderBytes)
	w.line("header_timeout = %s", quote(formatDuration(p.Proxy.HeaderTimeout)))
	w.line("dial_timeout = %s", quote(formatDuration(p.Proxy.DialTimeout)))
	w.line("idle_timeout = %s", quote(formatDuration(p.Proxy.IdleTimeout)))
	w.line("max_conns = %d", p.Proxy.MaxConns)

	w.table("process")
	w.list("env_deny", p.Process.EnvDeny)
	w.boolean("builtin_env_deny", p.Process.BuiltinEnvDeny != nil)
	if len(p.Process.BuiltinEnvDeny) > 0 {
		w.comment("built-in env-deny list: " + strings.Join(p.Process.BuiltinEnvDeny, " "))
	}
	w.line("max_processes = %d", p.Process.MaxProcesses)

	w.table("sandbox")
	w.line("mode = %s", quote(string(p.Sandbox.Mode)))
	w.boolean("allow_fallback", p.Sandbox.AllowFallback)
	w.boolean("best_effort", p.Sandbox.BestEffort)
	w.boolean("allow_nested", p.Sandbox.AllowNested)

	w.table("audit")
	if p.Audit.Log != "" {
		w.line("log = %s", quote(p.Audit.Log))
	} else {
		w.comment("log = \"\"  (no audit log)")
	}
	formatCredentials(&w, p)
	return w.String()
}

// formatCredentials writes the secret sources (never values) and the credential tables.
func formatCredentials(w *tomlWriter, p *Policy) {
	if len(p.Secrets) > 0 {
		w.table("secrets")
		for _, s := range p.Secrets {
			if s.Optional {
				w.line("%s = { from = %s, optional = true }", quote(s.Name), quote(s.String()))
			} else {
				w.line("%s = %s", quote(s.Name), quote(s.String()))
			}
		}
	}
	for _, c := range p.Credentials {
		w.line("\n[[credential]]")
		w.list("hosts", patternStrings(c.Hosts))
		w.line("header = %s", quote(c.Header))
		w.line("value = %s", quote(c.Value))
		w.line("secret = %s", quote(c.Secret))
		w.boolean("allow_plain_http", c.AllowPlainHTTP)
	}
	for _, u := range p.Upstreams {
		w.line("\n[[upstream]]")
		w.line("name = %s", quote(u.Name))
		w.line("url = %s", quote(u.URL))
		w.line("env = %s", quote(u.Env))
		w.boolean("allow_plain_http", u.AllowPlainHTTP)
		w.line("placeholders = %s", inlineTable(u.Placeholders))
		if c := u.Credential; c != nil {
			w.line("[upstream.credential]")
			w.line("header = %s", quote(c.Header))
			w.line("value = %s", quote(c.Value))
			w.line("secret = %s", quote(c.Secret))
		}
	}
	for _, pl := range p.Plugins {
		w.line("\n[[plugin]]")
		w.line("name = %s", quote(pl.Name))
		w.line("path = %s", quote(pl.Path))
		w.list("hosts", patternStrings(pl.Hosts))
		w.list("secrets", pl.Secrets)
		if pl.Timeout > 0 {
			w.line("timeout = %s", quote(formatDuration(pl.Timeout)))
		} else {
			w.comment("timeout: the plugin host's default")
		}
		if pl.MemoryLimit > 0 {
			w.line("memory_limit = %d", pl.MemoryLimit)
		} else {
			w.comment("memory_limit: the plugin host's default")
		}
		w.line("config = %s", inlineTable(pl.Config))
	}
}

func inlineTable(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, quote(k)+" = "+quote(m[k]))
	}
	if len(parts) == 0 {
		return "{}"
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

// formatFile writes one layer, as written (paths unexpanded), for `cordon import srt`.
func formatFile(f *fileV1, header, notes []string) []byte {
	var w tomlWriter
	for _, h := range header {
		w.comment(h)
	}
	for _, n := range notes {
		w.comment("not imported: " + n)
	}
	w.line("version = %d", Version)
	w.table("filesystem")
	w.list("allow_read", f.Filesystem.AllowRead)
	w.list("deny_read", f.Filesystem.DenyRead)
	w.list("allow_write", f.Filesystem.AllowWrite)
	w.list("deny_write", f.Filesystem.DenyWrite)
	w.table("network")
	var allow, deny []string
	for _, p := range f.Network.Allow {
		allow = append(allow, p.String())
	}
	for _, p := range f.Network.Deny {
		deny = append(deny, p.String())
	}
	w.list("allow", allow)
	w.list("deny", deny)
	w.list("allow_unix_sockets", f.Network.AllowUnixSockets)
	if f.Network.AllowLocalBind != nil {
		w.boolean("allow_local_bind", *f.Network.AllowLocalBind)
	}
	return []byte(w.String())
}

type tomlWriter struct{ strings.Builder }

func (w *tomlWriter) line(format string, args ...any) {
	fmt.Fprintf(&w.Builder, format+"\n", args...)
}

func (w *tomlWriter) comment(s string) {
	for _, l := range strings.Split(s, "\n") {
		w.line("# %s", l)
	}
}

func (w *tomlWriter) table(name string) { w.line("\n[%s]", name) }

func (w *tomlWriter) boolean(key string, v bool) { w.line("%s = %t", key, v) }

func (w *tomlWriter) list(key string, items []string) {
	if len(items) == 0 {
		w.line("%s = []", key)
		return
	}
	w.line("%s = [", key)
	for _, s := range items {
		w.line("  %s,", quote(s))
	}
	w.line("]")
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == utf8.RuneError:
			b.WriteString(`\uFFFD`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u` + fmt.Sprintf("%04X", r))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func formatDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

func patternStrings(ps []hostmatch.Pattern) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
