package policy

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var testEnv = Env{Home: "/home/u", Cwd: "/w"}

// TestBadFiles checks the exact error for every file in testdata/bad: each names the file,
// the line (and column where known), the key, and what is wrong.
func TestBadFiles(t *testing.T) {
	tests := []struct{ file, want string }{
		{"bad_addr.toml", "bad_addr.toml:3:18: network.allow_private: \"intranet\" is neither an address nor a CIDR range"},
		{"bad_cidr.toml", "bad_cidr.toml:3:18: network.allow_private: \"10.0.0.1/8\" has host bits set; did you mean \"10.0.0.0/8\"?"},
		{"bad_duration.toml", "bad_duration.toml:3:17: proxy.idle_timeout: \"forever\" is not a duration such as \"30s\" or \"5m\""},
		{"bad_env.toml", "bad_env.toml:3:1: process.env_deny: \"A=B\" is not a variable name pattern"},
		{"bad_glob.toml", "bad_glob.toml:3:1: filesystem.deny_read: path \"/x/[a\": bad glob: syntax error in pattern"},
		{"bad_mode.toml", "bad_mode.toml:3:9: sandbox.mode: \"none\" is not a mode: use \"auto\", \"namespace\" or \"fallback\""},
		{"bad_pattern.toml", "bad_pattern.toml:3:10: network.allow: pattern \"evil.com#@allowed.com\": invalid host name: \"evil.com#@allowed.com\": idna: disallowed rune U+0023"},
		{"bad_port.toml", "bad_port.toml:3:9: network.deny: pattern \"example.com:99999\": invalid port: \"99999\""},
		{"broad_pattern.toml", "broad_pattern.toml:3:1: network.allow: pattern \"*.co.uk\" covers the public suffix \"co.uk\": pattern too broad for an allow rule; name the hosts, or put the pattern in network.deny"},
		{"empty_path.toml", "empty_path.toml:3:1: filesystem.deny_write: empty path"},
		{"glob_in_allow.toml", "glob_in_allow.toml:3:1: filesystem.allow_read: path \"/home/*/src\": globs are allowed only in deny_read and deny_write"},
		{"int_range.toml", "int_range.toml:3:1: proxy.max_conns: 0 is out of range [1, 1048576]"},
		{"missing_version.toml", "missing_version.toml:1: version: missing; the first line of a policy file must be \"version = 1\""},
		{"negative_duration.toml", "negative_duration.toml:3:17: proxy.dial_timeout: \"-5s\" must be positive"},
		{"srt_array.json", "srt_array.json:1: settings must be a JSON object"},
		{"srt_pattern.json", "srt_pattern.json:3: network.allowedDomains: pattern \"a b.com\": invalid host name: \"a b.com\": idna: disallowed rune U+0020"},
		{"srt_syntax.json", "srt_syntax.json:3: JSON syntax: invalid character ']' looking for beginning of value"},
		{"srt_type.json", "srt_type.json:3: network.allowedDomains: must be a list of strings"},
		{"star_allow.toml", "star_allow.toml:3:1: network.allow: pattern \"*\" matches every host: pattern too broad for an allow rule; name the hosts, or put the pattern in network.deny"},
		{"syntax.toml", "syntax.toml:3:12: expected '.' or ']' to end table name, but got '\\n' instead"},
		{"tilde_user.toml", "tilde_user.toml:3:1: filesystem.allow_write: path \"~bob/src\": \"~user\" is not supported; write the path out"},
		{"unknown_key.toml", "unknown_key.toml:3:1: network.alow: unknown key; did you mean \"network.allow\"?"},
		{"unknown_preset.toml", "unknown_preset.toml:2:1: presets: no such preset \"nope\" (known: ci, claude, default)"},
		{"unknown_table.toml", "unknown_table.toml:2:2: netwrok: unknown key; did you mean \"network\"?"},
		{"wrong_type_bool.toml", "wrong_type_bool.toml:3: network.allow_local_bind: wrong type: want true or false, got a TOML string"},
		{"wrong_type_list.toml", "wrong_type_list.toml:3: filesystem.allow_read: wrong type: want a list, got a TOML string"},
		{"wrong_version.toml", "wrong_version.toml:1:1: version: version 2 is not supported; this cordon reads version 1"},
		{"cred_broad_host.toml", "cred_broad_host.toml:9:1: credential[1].hosts: pattern \"*.com\" covers the public suffix \"com\": pattern too broad for an allow rule; a secret must be bound to named hosts"},
		{"cred_host_header.toml", "cred_host_header.toml:6:1: credential[0].header: header \"Host\" is managed by the proxy and cannot carry a credential"},
		{"cred_no_hosts.toml", "cred_no_hosts.toml:5:1: credential[0].hosts: hosts is required: the hosts this credential may be sent to"},
		{"cred_template.toml", "cred_template.toml:7:1: credential[0].value: value \"Bearer\" must contain \"{secret}\" exactly once"},
		{"cred_undefined_secret.toml", "cred_undefined_secret.toml:5:1: credential[0].secret: secret \"gh\" is not defined in [secrets]"},
		{"plugin_bad_size.toml", "plugin_bad_size.toml:6:17: plugin.memory_limit: \"lots\" is not a size such as \"32MiB\""},
		{"plugin_memory.toml", "plugin_memory.toml:6:1: plugin[0].memory_limit: must be between 4MiB and 1GiB"},
		{"plugin_no_path.toml", "plugin_no_path.toml:2:1: plugin[0].path: required: the plugin's .wasm file"},
		{"plugin_undefined_secret.toml", "plugin_undefined_secret.toml:6:1: plugin[0].secrets: secret \"nope\" is not defined in [secrets]"},
		{"plugin_unknown_key.toml", "plugin_unknown_key.toml:6:1: plugin.timeuot: unknown key; did you mean \"plugin.timeout\"?"},
		{"secret_bad_env.toml", "secret_bad_env.toml:3:7: secrets.gh: \"env:A-B\": \"A-B\" is not an environment variable name"},
		{"secret_bad_source.toml", "secret_bad_source.toml:3:7: secrets.gh: \"vault:secret/gh\": unknown secret source \"vault\" (want env, file or cmd)"},
		{"secret_bad_table.toml", "secret_bad_table.toml:3:7: secrets.gh: unknown key \"form\" in secret (want \"from\" and \"optional\")"},
		{"upstream_dup_env.toml", "upstream_dup_env.toml:9:1: upstream[1].env: BASE_URL is already set by upstream \"a\""},
		{"upstream_http.toml", "upstream_http.toml:4:1: upstream[0].url: \"http://api.example.com\" is plain HTTP; use https, or set allow_plain_http = true"},
		{"upstream_reserved_env.toml", "upstream_reserved_env.toml:5:1: upstream[0].env: HTTPS_PROXY is set by cordon itself"},
		{"upstream_userinfo.toml", "upstream_userinfo.toml:4:1: upstream[0].url: \"https://user:xxxxx@a.example.com\": an upstream URL may not carry user info; put the credential in [upstream.credential]"},
	}
	files, _ := filepath.Glob("testdata/bad/*")
	if len(files) != len(tests) {
		t.Fatalf("testdata/bad has %d files, the table %d: keep them in step", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/bad", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(tt.file, data, testEnv)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestGoodFull(t *testing.T) {
	data, err := os.ReadFile("../policy.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("full.toml", data, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Sources, []string{"preset default", "full.toml"}; !slices.Equal(got, want) {
		t.Errorf("Sources = %q, want %q", got, want)
	}
	if !slices.Contains(p.Filesystem.AllowWrite, "/w") || !slices.Contains(p.Filesystem.AllowWrite, "/tmp") {
		t.Errorf("AllowWrite = %q", p.Filesystem.AllowWrite)
	}
	if !slices.Contains(p.Filesystem.DenyRead, "/home/u/.ssh") || !slices.Contains(p.Filesystem.DenyRead, "/w/**/.env") {
		t.Errorf("DenyRead = %q", p.Filesystem.DenyRead)
	}
	if !slices.Contains(p.Filesystem.DenyWrite, "/w/.git/hooks") {
		t.Errorf("DenyWrite = %q", p.Filesystem.DenyWrite)
	}
	if len(p.Network.Allow) != 3 || p.Network.Allow[2].String() != "example.com:443" {
		t.Errorf("Allow = %v", p.Network.Allow)
	}
	if len(p.Network.AllowPrivate) != 1 || p.Network.AllowPrivate[0] != netip.MustParsePrefix("10.1.2.0/24") {
		t.Errorf("AllowPrivate = %v", p.Network.AllowPrivate)
	}
	if p.Audit.Log != "/home/u/.local/state/cordon/audit.jsonl" {
		t.Errorf("Audit.Log = %q", p.Audit.Log)
	}
	wantSecrets := []Secret{
		{Name: "anthropic", Kind: SecretEnv, Ref: "ANTHROPIC_API_KEY", Optional: true},
		{Name: "aws_access_key_id", Kind: SecretCmd, Ref: "cat ~/.config/cordon/aws-access-key-id"},
		{Name: "aws_secret_access_key", Kind: SecretFile, Ref: "/home/u/.config/cordon/aws-secret-access-key"},
		{Name: "github", Kind: SecretEnv, Ref: "GITHUB_TOKEN"},
	}
	if !slices.Equal(p.Secrets, wantSecrets) {
		t.Errorf("Secrets = %+v", p.Secrets)
	}
	if len(p.Credentials) != 1 || p.Credentials[0].Header != "Authorization" || p.Credentials[0].Value != "Bearer {secret}" ||
		p.Credentials[0].Hosts[0].String() != "api.github.com" || p.Credentials[0].Secret != "github" {
		t.Errorf("Credentials = %+v", p.Credentials)
	}
	if len(p.Upstreams) != 1 || p.Upstreams[0].URL != "https://api.anthropic.com" || p.Upstreams[0].Env != "ANTHROPIC_BASE_URL" ||
		p.Upstreams[0].Credential == nil || p.Upstreams[0].Credential.Header != "x-api-key" ||
		p.Upstreams[0].Placeholders["ANTHROPIC_API_KEY"] != "cordon-placeholder" {
		t.Errorf("Upstreams = %+v", p.Upstreams)
	}
	if len(p.Plugins) != 1 || p.Plugins[0].Path != "/w/aws-sigv4.wasm" || p.Plugins[0].MemoryLimit != 32<<20 ||
		p.Plugins[0].Timeout != 100*time.Millisecond || p.Plugins[0].Config["region"] != "us-east-1" ||
		!slices.Equal(p.Plugins[0].Secrets, []string{"aws_access_key_id", "aws_secret_access_key"}) {
		t.Errorf("Plugins = %+v", p.Plugins)
	}
	if !p.Process.EnvDenied("MY_COMPANY_DB") || !p.Process.EnvDenied("OPENAI_API_KEY") || p.Process.EnvDenied("PATH") {
		t.Errorf("EnvDenied wrong for %q", p.Process.EnvDeny)
	}
}

// TestExampleFile loads policy.toml.example and checks that it mentions every key of the
// format, so the documentation cannot go stale.
func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("../policy.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("policy.toml.example", data, testEnv); err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, k := range knownKeys() {
		parts := strings.Split(k, ".")
		last := parts[len(parts)-1]
		if !strings.Contains(text, "\n"+last+" =") && !strings.Contains(text, "["+k+"]") {
			t.Errorf("policy.toml.example does not set %q", k)
		}
	}
}

func TestDefaults(t *testing.T) {
	p, err := Parse("min.toml", []byte("version = 1\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Filesystem.AllowRead)+len(p.Filesystem.AllowWrite)+len(p.Network.Allow) != 0 {
		t.Errorf("an empty policy grants something: %+v", p)
	}
	if p.Proxy.MaxConns != DefaultMaxConns || p.Proxy.IdleTimeout != DefaultIdleTimeout ||
		p.Proxy.MaxHeaderBytes != DefaultMaxHeaderBytes || p.Process.MaxProcesses != DefaultMaxProcesses {
		t.Errorf("defaults not applied: %+v %+v", p.Proxy, p.Process)
	}
	if p.Sandbox.Mode != ModeAuto || p.Sandbox.AllowFallback || p.Sandbox.BestEffort || p.Sandbox.AllowNested {
		t.Errorf("sandbox defaults wrong: %+v", p.Sandbox)
	}
	if len(p.Filesystem.BuiltinDenyWrite) == 0 || len(p.Process.BuiltinEnvDeny) == 0 {
		t.Error("built-in deny lists are not on by default")
	}
	off, err := Parse("off.toml", []byte("version = 1\n[filesystem]\nbuiltin_deny_write = false\n[process]\nbuiltin_env_deny = false\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if off.Filesystem.BuiltinDenyWrite != nil || off.Process.BuiltinEnvDeny != nil {
		t.Error("built-in lists not turned off")
	}
}

// TestLoadLayers checks the merge order and rules: presets, then the file, then flags; lists
// are unions, scalars come from the last layer that sets them.
func TestLoadLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cordon.toml")
	body := "version = 1\npresets = [\"ci\"]\n[network]\nallow = [\"example.com\", \"proxy.golang.org:443\"]\n" +
		"[proxy]\ndial_timeout = \"5s\"\n[sandbox]\nmode = \"namespace\"\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(Options{
		Presets: []string{"claude"},
		Flags:   Flags{AllowDomains: []string{"extra.example.org"}, AllowWrite: []string{"out"}, Mode: "fallback"},
		Env:     Env{Home: "/home/u", Cwd: dir},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"preset default", "preset claude", "preset ci", file, "flags"}
	if !slices.Equal(p.Sources, want) {
		t.Errorf("Sources = %q, want %q (./cordon.toml is found without --policy)", p.Sources, want)
	}
	var allow []string
	for _, a := range p.Network.Allow {
		allow = append(allow, a.String())
	}
	for _, h := range []string{"api.anthropic.com:443", "proxy.golang.org:443", "example.com", "extra.example.org"} {
		if !slices.Contains(allow, h) {
			t.Errorf("allow lacks %q: %q", h, allow)
		}
	}
	if n := strings.Count(strings.Join(allow, " "), "proxy.golang.org:443"); n != 1 {
		t.Errorf("union kept %d copies of a duplicate", n)
	}
	if !slices.Contains(p.Filesystem.AllowWrite, filepath.Join(dir, "out")) || !slices.Contains(p.Filesystem.AllowWrite, "/home/u/.claude") {
		t.Errorf("AllowWrite = %q", p.Filesystem.AllowWrite)
	}
	if p.Proxy.DialTimeout != 5*time.Second {
		t.Errorf("DialTimeout = %v", p.Proxy.DialTimeout)
	}
	if p.Sandbox.Mode != ModeFallback {
		t.Errorf("flag did not override the file's mode: %q", p.Sandbox.Mode)
	}
	if !slices.Contains(p.Filesystem.BuiltinDenyWrite, file) {
		t.Error("the policy file in use is not write-protected")
	}
}

func TestLoadErrors(t *testing.T) {
	env := Env{Home: "/home/u", Cwd: t.TempDir()}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"missing file", Options{File: "/nonexistent/cordon.toml"}, "policy file /nonexistent/cordon.toml does not exist"},
		{"unknown preset", Options{Presets: []string{"nope"}}, "flags: --preset: no such preset \"nope\" (known: ci, claude, default)"},
		{"bad domain flag", Options{Flags: Flags{AllowDomains: []string{"*.com"}}}, "flags: --allow-domain: pattern \"*.com\" covers the public suffix \"com\": pattern too broad for an allow rule; name the hosts, or put the pattern in network.deny"},
		{"bad domain syntax", Options{Flags: Flags{AllowDomains: []string{"a/b"}}}, "flags: --allow-domain: pattern \"a/b\": invalid host name: \"a/b\": idna: disallowed rune U+002F"},
		{"glob write flag", Options{Flags: Flags{AllowWrite: []string{"*"}}}, "flags: --allow-write: path \"*\": globs are allowed only in deny_read and deny_write"},
		{"bad mode flag", Options{Flags: Flags{Mode: "off"}}, "flags: --mode: \"off\" is not a mode: use \"auto\", \"namespace\" or \"fallback\""},
		{"relative cwd", Options{Env: Env{Cwd: "rel"}}, "policy: working directory \"rel\" is not absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Env.Cwd == "" {
				tt.opts.Env = env
			}
			_, err := Load(tt.opts)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Load error:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestDefaultPresetWhenNothingGiven(t *testing.T) {
	p, err := Load(Options{Env: Env{Home: "/home/u", Cwd: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Sources, []string{"preset default"}) {
		t.Errorf("Sources = %q", p.Sources)
	}
	if !slices.Equal(p.Filesystem.AllowRead, []string{"/"}) || len(p.Network.Allow) != 0 {
		t.Errorf("default preset: read %q, allow %v", p.Filesystem.AllowRead, p.Network.Allow)
	}
}

func TestPresetsValid(t *testing.T) {
	for _, name := range PresetNames() {
		if _, err := Load(Options{Presets: []string{name}, Env: testEnv}); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
}

func TestExpandPath(t *testing.T) {
	tests := []struct {
		in, want string
		glob     bool
		err      string
	}{
		{in: "~", want: "/home/u"},
		{in: "~/.ssh", want: "/home/u/.ssh"},
		{in: ".", want: "/w"},
		{in: "./a/../b", want: "/w/b"},
		{in: "sub/dir/", want: "/w/sub/dir"},
		{in: "/a//b/", want: "/a/b"},
		{in: "**/.env", want: "/w/**/.env", glob: true},
		{in: "~root", err: `path "~root": "~user" is not supported; write the path out`},
		{in: "", err: "empty path"},
		{in: "a\x00b", err: `path "a\x00b" contains a NUL byte`},
		{in: "a*", err: `path "a*": globs are allowed only in deny_read and deny_write`},
	}
	for _, tt := range tests {
		got, err := ExpandPath(tt.in, testEnv, tt.glob)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ExpandPath(%q) error = %v, want %s", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ExpandPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := ExpandPath("~/x", Env{Cwd: "/w"}, false); err == nil || !strings.Contains(err.Error(), "HOME is not set") {
		t.Errorf("~ without a home: %v", err)
	}
}

func TestSRTImport(t *testing.T) {
	data, err := os.ReadFile("testdata/good/srt.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("srt.json", data, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Filesystem.AllowRead, []string{"/"}) || !slices.Equal(p.Filesystem.DenyRead, []string{"/home/u/.ssh"}) ||
		!slices.Equal(p.Filesystem.AllowWrite, []string{"/w", "/tmp"}) || !slices.Equal(p.Filesystem.DenyWrite, []string{"/w/.env"}) {
		t.Errorf("filesystem = %+v", p.Filesystem)
	}
	if len(p.Network.Allow) != 2 || len(p.Network.Deny) != 1 || !p.Network.AllowLocalBind ||
		!slices.Equal(p.Network.AllowUnixSockets, []string{"/var/run/docker.sock"}) {
		t.Errorf("network = %+v", p.Network)
	}
	wantNotes := []string{
		`srt.json: "enableWeakerNestedSandbox" is not supported by cordon and was not applied`,
		`srt.json: "network.httpProxyPort" is not supported by cordon and was not applied`,
	}
	if !slices.Equal(p.Notes, wantNotes) {
		t.Errorf("Notes = %q, want %q", p.Notes, wantNotes)
	}
	out, notes, err := FromSRT("srt.json", data)
	if err != nil || len(notes) != 2 {
		t.Fatalf("FromSRT: %v, %q", err, notes)
	}
	back, err := Parse("imported.toml", out, testEnv)
	if err != nil {
		t.Fatalf("the imported TOML does not load: %v\n%s", err, out)
	}
	if !slices.Equal(back.Filesystem.DenyRead, p.Filesystem.DenyRead) || len(back.Network.Allow) != 2 || !back.Network.AllowLocalBind {
		t.Errorf("import round trip differs:\n%s", out)
	}
	if !strings.Contains(string(out), `"~/.ssh"`) {
		t.Errorf("import expanded paths instead of keeping them as written:\n%s", out)
	}
}

// TestFormatRoundTrip checks that `cordon check` output loads back to the same policy.
func TestFormatRoundTrip(t *testing.T) {
	for _, name := range []string{"../policy.toml.example", "testdata/good/srt.json"} {
		data, _ := os.ReadFile(name)
		p, err := Parse(name, data, testEnv)
		if err != nil {
			t.Fatal(err)
		}
		text := Format(p)
		q, err := Parse("formatted.toml", []byte(text), testEnv)
		if err != nil {
			t.Fatalf("%s: formatted policy does not load: %v\n%s", name, err, text)
		}
		p.Sources, q.Sources, p.Notes, q.Notes = nil, nil, nil, nil
		if Format(p) != Format(q) {
			t.Errorf("%s: round trip differs:\n%s\n---\n%s", name, Format(p), Format(q))
		}
	}
}

func TestQuote(t *testing.T) {
	s := "a\"b\\c\n\x01é"
	q := quote(s)
	p, err := Parse("q.toml", []byte("version = 1\n[filesystem]\nallow_read = ["+q+"]\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Filesystem.AllowRead[0]; got != "/w/"+s {
		t.Errorf("quote round trip: %q", got)
	}
}

func TestMatchEnv(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*_API_KEY", "OPENAI_API_KEY", true},
		{"*_API_KEY", "_API_KEY", true},
		{"*_API_KEY", "API_KEY", false},
		{"AWS_*_KEY", "AWS_SECRET_ACCESS_KEY", true},
		{"PATH", "PATH", true},
		{"PATH", "PATHS", false},
		{"*", "", true},
		{"A*B*C", "AxxBxxC", true},
		{"A*B*C", "AxxCxxB", false},
	}
	for _, tt := range tests {
		if got := MatchEnv(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchEnv(%q, %q) = %v", tt.pattern, tt.name, got)
		}
	}
}

// TestKeyPositionsPinned guards the reflection that reads key positions from BurntSushi/toml:
// if an upgrade changes its internals, unknown keys would lose their line numbers.
func TestKeyPositionsPinned(t *testing.T) {
	_, err := Parse("pin.toml", []byte("version = 1\n\n[audit]\n  lgo = \"x\"\n"), testEnv)
	if err == nil || err.Error() != `pin.toml:4:3: audit.lgo: unknown key; did you mean "audit.log"?` {
		t.Fatalf("error = %v", err)
	}
}

// FuzzParse feeds arbitrary bytes to the loader: it must return a policy or an *Error, never
// panic, and a policy it returns must survive Format and load again.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*")
	seeds = append(seeds, "../policy.toml.example")
	for _, s := range seeds {
		data, _ := os.ReadFile(s)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.toml", data, testEnv)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error is not an *Error: %T %v", err, err)
			}
			return
		}
		if _, err := Parse("again.toml", []byte(Format(p)), testEnv); err != nil {
			t.Fatalf("formatted policy does not load: %v\n%s", err, Format(p))
		}
	})
}

// The claude preset routes the Anthropic API through an upstream route whose key comes from
// ANTHROPIC_API_KEY outside, and is optional so that claude runs without it too.
func TestClaudePresetUpstream(t *testing.T) {
	p, err := Load(Options{Presets: []string{"claude"}, Env: Env{Home: "/home/u", Cwd: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Secrets) != 1 || p.Secrets[0] != (Secret{Name: "anthropic_api_key", Kind: SecretEnv, Ref: "ANTHROPIC_API_KEY", Optional: true}) {
		t.Errorf("secrets %+v", p.Secrets)
	}
	if len(p.Upstreams) != 1 {
		t.Fatalf("upstreams %+v", p.Upstreams)
	}
	u := p.Upstreams[0]
	if u.Name != "anthropic" || u.URL != "https://api.anthropic.com" || u.Env != "ANTHROPIC_BASE_URL" ||
		u.Placeholders["ANTHROPIC_API_KEY"] == "" || u.Credential == nil ||
		*u.Credential != (UpstreamCredential{Header: "x-api-key", Value: "{secret}", Secret: "anthropic_api_key"}) {
		t.Errorf("upstream %+v %+v", u, u.Credential)
	}
}
