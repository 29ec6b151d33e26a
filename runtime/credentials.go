package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/term"

	"github.com/cordonsh/cordon/hostmatch"
	"github.com/cordonsh/cordon/netproxy"
	"github.com/cordonsh/cordon/plugins"
	"github.com/cordonsh/cordon/policy"
)

// DefaultSecretCmdTimeout bounds a cmd: secret: long enough for a password manager's prompt.
const DefaultSecretCmdTimeout = 60 * time.Second

// maxSecretBytes bounds a secret read from a file or a command.
const maxSecretBytes = 64 << 10

// ErrSecret wraps every failure to obtain a secret that is not optional. Its messages name
// the secret and where it comes from, never its value or a command's output.
var ErrSecret = errors.New("secret")

// CredentialOptions configures ResolveCredentials.
type CredentialOptions struct {
	// Env is the environment cordon runs in: env: secrets are read from it, and cmd:
	// secrets run with it. Defaults to os.Environ().
	Env []string
	// Dir is the working directory of cmd: secrets. Defaults to the current directory.
	Dir string
	// Stdin is given to cmd: secrets if it is a terminal, so that a password manager can
	// prompt; otherwise they read /dev/null. Defaults to none.
	Stdin *os.File
	// Diag receives the standard error of cmd: secrets and a note for each optional secret
	// that is missing. Defaults to os.Stderr.
	Diag io.Writer
	// CmdTimeout bounds each cmd: secret. Defaults to DefaultSecretCmdTimeout.
	CmdTimeout time.Duration
	// PluginCacheDir is the plugins' compilation cache. Defaults to plugins.DefaultCacheDir.
	PluginCacheDir string
	// Logger receives debug logs, the plugins' log lines among them. Defaults to a logger
	// that discards.
	Logger *slog.Logger
}

// Credentials is what the policy's [secrets], [[credential]], [[upstream]] and [[plugin]]
// tables make of a run: the resolved secrets (in memory only), the proxy's credential rules,
// upstream routes and plugins, and what the command's environment and filesystem view lose
// and gain. Close zeroes the secrets when the run ends.
type Credentials struct {
	secrets  map[string][]byte
	rules    []netproxy.Credential
	routes   []credRoute
	host     *plugins.Host
	loaded   []*plugins.Plugin
	unset    []string
	denyRead []string
	redactor *netproxy.Redactor
	notes    []string
}

// credRoute is an upstream route of the run.
type credRoute struct {
	up    policy.Upstream
	cred  *netproxy.Credential
	token string // the path token, once the run asks for one
}

// ResolveCredentials reads the secrets that the policy's rules, upstreams and plugins use
// and builds what the run needs from them. A missing secret is an error wrapping ErrSecret,
// unless it is optional: then the rules, upstreams and plugins that use it are left out,
// with a note on opts.Diag. Plugins are loaded (compiled) here, so that a broken module
// stops the run before the command starts.
func ResolveCredentials(ctx context.Context, p *policy.Policy, opts CredentialOptions) (*Credentials, error) {
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	if opts.Diag == nil {
		opts.Diag = os.Stderr
	}
	if opts.CmdTimeout <= 0 {
		opts.CmdTimeout = DefaultSecretCmdTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Credentials{secrets: map[string][]byte{}}
	ok := false
	defer func() {
		if !ok {
			_ = c.Close(context.Background())
		}
	}()

	// Every source the policy names is hidden from the command, used or not.
	for _, s := range p.Secrets {
		switch s.Kind {
		case policy.SecretEnv:
			c.unset = append(c.unset, s.Ref)
		case policy.SecretFile:
			if _, err := os.Lstat(s.Ref); err == nil {
				c.denyRead = append(c.denyRead, s.Ref)
			}
		}
	}

	used := map[string]bool{}
	for _, cr := range p.Credentials {
		used[cr.Secret] = true
	}
	for _, u := range p.Upstreams {
		if u.Credential != nil {
			used[u.Credential.Secret] = true
		}
	}
	for _, pl := range p.Plugins {
		for _, s := range pl.Secrets {
			used[s] = true
		}
	}
	missing := map[string]string{} // optional secrets that are missing, and why
	for _, s := range p.Secrets {
		if !used[s.Name] {
			continue
		}
		v, err := resolveSecret(ctx, s, opts)
		if err != nil {
			if s.Optional && !errors.Is(err, context.Canceled) {
				missing[s.Name] = err.Error()
				continue
			}
			return nil, err
		}
		c.secrets[s.Name] = v
	}
	c.redactor = netproxy.NewRedactor(c.secrets)
	skip := func(what, secret string) {
		note := fmt.Sprintf("cordon: %s; %s is left out", missing[secret], what)
		c.notes = append(c.notes, note)
		fmt.Fprintln(opts.Diag, c.redactor.String(note))
	}

	for i, cr := range p.Credentials {
		name := fmt.Sprintf("credential[%d] (%s for %s)", i, cr.Header, patternList(cr.Hosts))
		v, have := c.secrets[cr.Secret]
		if !have {
			skip(name, cr.Secret)
			continue
		}
		value, err := render(cr.Value, cr.Secret, v)
		if err != nil {
			return nil, err
		}
		c.rules = append(c.rules, netproxy.Credential{
			Name: fmt.Sprintf("credential[%d]", i), Hosts: cr.Hosts, Header: cr.Header, Value: value,
			AllowPlainHTTP: cr.AllowPlainHTTP,
		})
	}
	for _, u := range p.Upstreams {
		r := credRoute{up: u}
		if u.Credential != nil {
			v, have := c.secrets[u.Credential.Secret]
			if !have {
				skip(fmt.Sprintf("upstream %q (%s is not set for the command)", u.Name, u.Env), u.Credential.Secret)
				continue
			}
			value, err := render(u.Credential.Value, u.Credential.Secret, v)
			if err != nil {
				return nil, err
			}
			r.cred = &netproxy.Credential{Name: fmt.Sprintf("upstream %q", u.Name), Header: u.Credential.Header, Value: value}
		}
		c.routes = append(c.routes, r)
	}
	if err := c.loadPlugins(ctx, p, opts, missing, skip); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func patternList(ps []hostmatch.Pattern) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// render fills a value template with a secret, and checks that the result can be a header
// value. The error names the secret, never the value.
func render(tmpl, name string, secret []byte) (string, error) {
	value := strings.Replace(tmpl, "{secret}", string(secret), 1)
	if !httpguts.ValidHeaderFieldValue(value) || strings.TrimSpace(value) != value {
		return "", fmt.Errorf("%w %q cannot go into a header: it has a control character, a line break or surrounding spaces", ErrSecret, name)
	}
	return value, nil
}

// loadPlugins loads the policy's plugins with the secrets they may use.
func (c *Credentials) loadPlugins(ctx context.Context, p *policy.Policy, opts CredentialOptions, missing map[string]string, skip func(string, string)) error {
	if len(p.Plugins) == 0 {
		return nil
	}
	host, err := plugins.NewHost(plugins.HostConfig{
		CacheDir: opts.PluginCacheDir,
		Logger:   slog.New(c.redactor.Handler(opts.Logger.Handler())),
	})
	if err != nil {
		return err
	}
	c.host = host
	for _, pl := range p.Plugins {
		secrets := map[string][]byte{}
		absent := ""
		for _, s := range pl.Secrets {
			v, have := c.secrets[s]
			if !have {
				absent = s
				break
			}
			secrets[s] = v
		}
		if absent != "" {
			skip(fmt.Sprintf("plugin %q", pl.Name), absent)
			continue
		}
		loaded, err := host.Load(ctx, plugins.PluginConfig{
			Name: pl.Name, Path: pl.Path, Hosts: pl.Hosts, Secrets: secrets, Config: pl.Config,
			Timeout: pl.Timeout, MemoryLimit: pl.MemoryLimit,
		})
		if err != nil {
			return fmt.Errorf("%s", c.redactor.String(err.Error()))
		}
		c.loaded = append(c.loaded, loaded)
	}
	return nil
}

// resolveSecret reads one secret from its source.
func resolveSecret(ctx context.Context, s policy.Secret, opts CredentialOptions) ([]byte, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w %q (%s): %s", ErrSecret, s.Name, s.Kind, fmt.Sprintf(format, args...))
	}
	switch s.Kind {
	case policy.SecretEnv:
		v, ok := lookupEnv(opts.Env, s.Ref)
		if !ok || v == "" {
			return nil, fmt.Errorf("%w %q: the environment variable %s is not set", ErrSecret, s.Name, s.Ref)
		}
		return []byte(v), nil
	case policy.SecretFile:
		f, err := os.Open(s.Ref)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w %q: the file %s does not exist", ErrSecret, s.Name, s.Ref)
			}
			return nil, fmt.Errorf("%w %q: %v", ErrSecret, s.Name, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%w %q: reading %s: %v", ErrSecret, s.Name, s.Ref, errors.Unwrap(err))
		}
		if len(b) > maxSecretBytes {
			clear(b)
			return nil, fmt.Errorf("%w %q: the file %s is larger than %d bytes", ErrSecret, s.Name, s.Ref, maxSecretBytes)
		}
		return trimSecret(b, func() error { return fmt.Errorf("%w %q: the file %s is empty", ErrSecret, s.Name, s.Ref) })
	case policy.SecretCmd:
		b, err := runSecretCmd(ctx, s.Ref, opts)
		if err != nil {
			return nil, fail("%v", err)
		}
		return trimSecret(b, func() error { return fail("the command printed nothing") })
	}
	return nil, fmt.Errorf("%w %q: unknown source %q", ErrSecret, s.Name, s.Kind)
}

// trimSecret removes one trailing line ending, which files and commands usually add.
func trimSecret(b []byte, empty func() error) ([]byte, error) {
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		n--
		if n > 0 && b[n-1] == '\r' {
			n--
		}
	}
	if n == 0 {
		clear(b)
		return nil, empty()
	}
	out := bytes.Clone(b[:n])
	clear(b)
	return out, nil
}

// runSecretCmd runs a cmd: secret with /bin/sh -c, outside the sandbox, and returns its
// standard output. Its standard error goes to the user; its output is never shown, even
// when it fails.
func runSecretCmd(ctx context.Context, command string, opts CredentialOptions) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.CmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = opts.Env
	cmd.Dir = opts.Dir
	cmd.Stderr = opts.Diag
	if opts.Stdin != nil && term.IsTerminal(int(opts.Stdin.Fd())) {
		cmd.Stdin = opts.Stdin
	}
	setProcessGroup(cmd)
	var out limitedBuffer
	cmd.Stdout = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if out.over {
		clear(out.b)
		return nil, fmt.Errorf("the command printed more than %d bytes", maxSecretBytes)
	}
	if err != nil {
		clear(out.b)
		var ee *exec.ExitError
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			return nil, fmt.Errorf("the command did not finish within %s", opts.CmdTimeout)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &ee) && ee.ExitCode() >= 0:
			return nil, fmt.Errorf("the command exited with status %d (its output is not shown)", ee.ExitCode())
		case errors.As(err, &ee):
			return nil, fmt.Errorf("the command was killed (%v)", ee.ProcessState)
		}
		return nil, fmt.Errorf("running /bin/sh: %v", err)
	}
	return out.b, nil
}

// limitedBuffer keeps up to maxSecretBytes and remembers whether more came.
type limitedBuffer struct {
	b    []byte
	over bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b)+len(p) > maxSecretBytes {
		l.over = true
		return len(p), nil
	}
	if l.b == nil {
		l.b = make([]byte, 0, 256)
	}
	if cap(l.b)-len(l.b) < len(p) {
		// Grow by hand so that no copy of the secret is left behind unzeroed.
		nb := make([]byte, len(l.b), 2*cap(l.b)+len(p))
		copy(nb, l.b)
		clear(l.b)
		l.b = nb
	}
	l.b = append(l.b, p...)
	return len(p), nil
}

func lookupEnv(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// ProxyConfig adds the credential rules, routes, plugins and the redaction of every secret
// to cfg. With pathTokens, each route gets a random path token (see netproxy.Route): for
// route listeners that other processes on the host could reach.
func (c *Credentials) ProxyConfig(cfg *netproxy.Config, pathTokens bool) {
	cfg.Credentials = append(cfg.Credentials, c.rules...)
	for i := range c.routes {
		r := &c.routes[i]
		if pathTokens && r.token == "" {
			r.token = newToken()
		}
		cfg.Routes = append(cfg.Routes, netproxy.Route{Name: r.up.Name, URL: r.up.URL, Credential: r.cred, PathToken: r.token})
	}
	for _, pl := range c.loaded {
		cfg.Hooks = append(cfg.Hooks, pluginHook{pl})
	}
	cfg.Redactor = c.redactor
	if testProxyHook != nil {
		testProxyHook(cfg)
	}
}

// testProxyHook, set by tests (see SetTestProxyHook in credentials_export_test.go), adjusts a
// run's proxy configuration: a resolver for test names, the roots of a test upstream.
var testProxyHook func(*netproxy.Config)

// Routes returns the names of the upstream routes the run serves, in policy order: each
// needs a listener (see netproxy.Proxy.ServeRoute).
func (c *Credentials) Routes() []string {
	out := make([]string, len(c.routes))
	for i, r := range c.routes {
		out[i] = r.up.Name
	}
	return out
}

// DenyRead returns the files that file: secrets are read from: the command may not read
// them.
func (c *Credentials) DenyRead() []string { return slices.Clone(c.denyRead) }

// DenyWrite returns what the command must not change: the plugins' compilation cache, which
// holds native code that cordon runs outside the sandbox.
func (c *Credentials) DenyWrite() []string {
	if c.host == nil || c.host.CacheDir() == "" {
		return nil
	}
	return []string{c.host.CacheDir()}
}

// Redactor returns the redactor of the run's secrets, for every message cordon writes.
func (c *Credentials) Redactor() *netproxy.Redactor { return c.redactor }

// CABundle is the interception CA as the command sees it.
type CABundle struct {
	// Bundle is the system's roots and the CA, one PEM file.
	Bundle string
	// CA is the CA's certificate alone.
	CA string
}

// caEnvBundle are the variables that name a complete trust store; caEnvExtra those that add
// certificates to a tool's own.
var (
	caEnvBundle = []string{
		"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT",
		"AWS_CA_BUNDLE", "DENO_CERT", "CARGO_HTTP_CAINFO", "NPM_CONFIG_CAFILE", "BUNDLE_SSL_CA_CERT",
		"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "HEX_CACERTS_PATH",
	}
	caEnvExtra = []string{"NODE_EXTRA_CA_CERTS"}
)

// systemRootFiles are where Linux distributions and macOS keep their root bundle, in Go's
// order.
var systemRootFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

// WriteCABundle writes the CA (PEM) and a bundle of the system's roots plus the CA into dir,
// which the command can read. The system's roots come from SSL_CERT_FILE in env if that is
// set, else from the distribution's bundle; without either the bundle holds the CA alone.
func WriteCABundle(dir string, caPEM []byte, env []string) (*CABundle, error) {
	var roots []byte
	sources := systemRootFiles
	if f, ok := lookupEnv(env, "SSL_CERT_FILE"); ok && f != "" {
		sources = append([]string{f}, sources...)
	}
	for _, f := range sources {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")) {
			roots = b
			break
		}
	}
	b := &CABundle{Bundle: filepath.Join(dir, "cordon-ca-bundle.pem"), CA: filepath.Join(dir, "cordon-ca.pem")}
	bundle := append(bytes.TrimRight(roots, "\n"), '\n')
	if len(roots) == 0 {
		bundle = nil
	}
	bundle = append(bundle, caPEM...)
	for path, data := range map[string][]byte{b.CA: caPEM, b.Bundle: bundle} {
		if err := os.WriteFile(path, data, 0o444); err != nil {
			return nil, fmt.Errorf("write CA bundle %s: %w", path, err)
		}
	}
	return b, nil
}

// CommandEnv returns env with the secrets' variables removed and the run's additions: each
// route's variable (routeAddrs maps a route's name to its listener's "host:port" as the
// command reaches it), the routes' placeholders, and, if ca is set, the CA variables.
func (c *Credentials) CommandEnv(env []string, routeAddrs map[string]string, ca *CABundle) []string {
	set := map[string]string{}
	var order []string
	add := func(k, v string) {
		if _, ok := set[k]; !ok {
			order = append(order, k)
		}
		set[k] = v
	}
	for _, r := range c.routes {
		addr, ok := routeAddrs[r.up.Name]
		if !ok {
			continue
		}
		u := "http://" + addr
		if r.token != "" {
			u += "/" + r.token
		}
		add(r.up.Env, u)
		for _, k := range sortedKeys(r.up.Placeholders) {
			add(k, r.up.Placeholders[k])
		}
	}
	if ca != nil {
		for _, k := range caEnvBundle {
			add(k, ca.Bundle)
		}
		for _, k := range caEnvExtra {
			add(k, ca.CA)
		}
	}
	out := make([]string, 0, len(env)+len(order))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, replaced := set[k]; replaced || slices.Contains(c.unset, k) {
			continue
		}
		out = append(out, kv)
	}
	for _, k := range order {
		out = append(out, k+"="+set[k])
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Close unloads the plugins and zeroes every copy of the secrets that cordon holds in byte
// slices. The copies inside header values (Go strings) are left to the garbage collector.
func (c *Credentials) Close(ctx context.Context) error {
	var err error
	if c.host != nil {
		err = c.host.Close(ctx)
		c.host = nil
	}
	for _, v := range c.secrets {
		clear(v)
	}
	c.secrets = map[string][]byte{}
	c.redactor.Wipe()
	return err
}

// pluginHook adapts a plugin to the proxy's request hook.
type pluginHook struct{ p *plugins.Plugin }

func (h pluginHook) Name() string               { return h.p.Name() }
func (h pluginHook) Hosts() []hostmatch.Pattern { return h.p.Hosts() }

func (h pluginHook) Apply(ctx context.Context, req *http.Request) (netproxy.HookResult, error) {
	res, err := h.p.Apply(ctx, req)
	if err != nil {
		return netproxy.HookResult{}, err
	}
	if res.Deny != nil {
		return netproxy.HookResult{Deny: &netproxy.HookDeny{Status: res.Deny.Status, Reason: res.Deny.Reason}}, nil
	}
	return netproxy.HookResult{}, nil
}

// runCredentials resolves the policy's secrets, before anything of the sandbox exists (a
// cmd: secret may prompt on the terminal), and makes cordon's own messages and logs redact
// them from then on.
func runCredentials(ctx context.Context, cfg *Config) (*Credentials, error) {
	c, err := ResolveCredentials(ctx, cfg.Policy, CredentialOptions{
		Env: cfg.Env, Dir: cfg.Dir, Stdin: cfg.Stdin, Diag: cfg.Diag, Logger: cfg.Logger,
		PluginCacheDir: pluginCacheDir(cfg.Env),
	})
	if err != nil {
		return nil, err // exit status 125; the message names the secret or the plugin
	}
	red := c.Redactor()
	cfg.Diag = red.Writer(cfg.Diag)
	cfg.Logger = slog.New(red.Handler(cfg.Logger.Handler()))
	return c, nil
}

// pluginCacheDir is the plugins' compilation cache for the run's environment (whose HOME the
// policy's built-in write-deny list protects): $XDG_CACHE_HOME/cordon/wasm or
// $HOME/.cache/cordon/wasm, or "" for the plugins package's default.
func pluginCacheDir(env []string) string {
	if d, ok := lookupEnv(env, "XDG_CACHE_HOME"); ok && filepath.IsAbs(d) {
		return filepath.Join(d, "cordon", "wasm")
	}
	if h, ok := lookupEnv(env, "HOME"); ok && filepath.IsAbs(h) {
		return filepath.Join(h, ".cache", "cordon", "wasm")
	}
	return ""
}
