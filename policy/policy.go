// Package policy reads cordon's policy files and turns them into typed, validated values.
//
// A policy comes from up to three layers, merged in this order: the presets it names, the
// policy file, and the command-line flags (see [Load]). Every list is the union of the layers;
// a scalar takes the value of the last layer that sets it. Deny lists beat allow lists where
// they are enforced: a path in deny_read is masked even inside allow_read, a path in
// deny_write stays read-only inside allow_write, a host in network.deny is refused even if
// network.allow names it.
//
// The package is pure data: it resolves "~" and relative paths but never touches the paths
// themselves, and it knows nothing of how a policy is enforced.
package policy

import (
	"net/netip"
	"time"

	"github.com/cordonsh/cordon/hostmatch"
)

// Version is the only policy file version this package reads.
const Version = 1

// Policy is a merged, validated policy. Paths are absolute and clean; patterns are parsed.
// The zero Policy grants nothing: no reads, no writes, no network.
type Policy struct {
	// Sources names the layers the policy was built from, in merge order, such as
	// "preset default", "/home/me/project/cordon.toml" or "flags".
	Sources []string
	// Notes are things the user should know about how the sources were read, such as keys of
	// an imported sandbox-runtime file that cordon does not support.
	Notes []string

	Filesystem Filesystem
	Network    Network
	Proxy      Proxy
	Process    Process
	Sandbox    Sandbox
	Audit      Audit

	// Secrets are where cordon reads the secrets that credentials, upstreams and plugins use,
	// sorted by name. Defaults to none.
	Secrets []Secret
	// Credentials are header rules the proxy applies to requests. Defaults to none.
	Credentials []Credential
	// Upstreams are reverse-proxy routes given to the command as local URLs. Defaults to none.
	Upstreams []Upstream
	// Plugins are WebAssembly modules applied to requests. Defaults to none.
	Plugins []Plugin
}

// Filesystem is the [filesystem] table.
type Filesystem struct {
	// AllowRead lists the trees the command may read and execute. Defaults to none.
	AllowRead []string
	// DenyRead lists paths hidden even inside AllowRead. Entries may be globs ("*", "?",
	// "[...]", and "**" for any number of directories); the jail expands them when the run
	// starts. Defaults to none.
	DenyRead []string
	// AllowWrite lists the trees the command may create, change and delete files in.
	// Defaults to none.
	AllowWrite []string
	// DenyWrite lists paths that stay read-only even inside AllowWrite; globs as in DenyRead.
	// Defaults to none.
	DenyWrite []string
	// BuiltinDenyWrite is the built-in write-deny list (see [BuiltinDenyWrite]) resolved for
	// this run, or nil if the policy turned it off with builtin_deny_write = false.
	// Enforced exactly like DenyWrite.
	BuiltinDenyWrite []string
}

// Network is the [network] table.
type Network struct {
	// Allow lists the destinations the proxy lets through. Defaults to none.
	Allow []hostmatch.Pattern
	// Deny lists destinations refused even if Allow matches them. Defaults to none.
	Deny []hostmatch.Pattern
	// AllowPrivate lists the non-public address ranges that a destination may resolve to
	// (loopback, private, link-local and the like are refused otherwise). Defaults to none.
	AllowPrivate []netip.Prefix
	// AllowUnixSockets lists the pathname unix sockets the command may connect to.
	// Defaults to none.
	AllowUnixSockets []string
	// AllowLocalBind lets the command listen on loopback inside its sandbox.
	// Defaults to false.
	AllowLocalBind bool
}

// Proxy is the [proxy] table: the limits and timeouts of the egress proxy.
type Proxy struct {
	// MaxHeaderBytes bounds a request's header block. Defaults to 64 KiB.
	MaxHeaderBytes int
	// HeaderTimeout bounds the time to read a request's header block. Defaults to 30s.
	HeaderTimeout time.Duration
	// DialTimeout bounds resolving and connecting to a destination. Defaults to 30s.
	DialTimeout time.Duration
	// IdleTimeout closes a tunnel or keep-alive connection with no traffic either way for
	// this long. Defaults to 10m.
	IdleTimeout time.Duration
	// MaxConns bounds the connections served at once; more wait to be accepted.
	// Defaults to 4096.
	MaxConns int
}

// Process is the [process] table.
type Process struct {
	// EnvDeny lists environment variable names removed from the command's environment;
	// "*" matches any run of characters (see [MatchEnv]). Defaults to none.
	EnvDeny []string
	// BuiltinEnvDeny is [BuiltinEnvDeny], or nil if the policy set builtin_env_deny = false.
	// Enforced exactly like EnvDeny.
	BuiltinEnvDeny []string
	// MaxProcesses bounds the number of processes the command may have at once.
	// Defaults to 4096; 0 means no limit.
	MaxProcesses int
}

// Mode is how a run is confined.
type Mode string

// The modes.
const (
	// ModeAuto uses namespaces where the kernel allows them, else refuses to run unless
	// Sandbox.AllowFallback is set.
	ModeAuto Mode = "auto"
	// ModeNamespace requires user, network, mount and PID namespaces.
	ModeNamespace Mode = "namespace"
	// ModeFallback uses Landlock and seccomp alone, without namespaces: weaker, and said so.
	ModeFallback Mode = "fallback"
	// ModeSeatbelt is the mode of every run on macOS: sandbox-exec with a profile generated
	// from the policy. It is reported, not written in policy files: there, "auto" (and
	// "fallback") mean it on macOS, and "namespace" is refused.
	ModeSeatbelt Mode = "seatbelt"
)

// Sandbox is the [sandbox] table.
type Sandbox struct {
	// Mode chooses the confinement. Defaults to ModeAuto.
	Mode Mode
	// AllowFallback lets ModeAuto run in ModeFallback where namespaces are refused.
	// Defaults to false.
	AllowFallback bool
	// BestEffort lets the command run when a restriction cannot be applied (an old kernel
	// without Landlock, say); cordon then names each restriction that is not enforced.
	// Defaults to false: such a run is refused.
	BestEffort bool
	// AllowNested lets the command create user namespaces (nested sandboxes, rootless
	// containers). Defaults to false.
	AllowNested bool
}

// Audit is the [audit] table.
type Audit struct {
	// Log is the file that receives one JSON line per proxy decision and connection.
	// Defaults to "" (no audit log).
	Log string
}

// Defaults for the fields that have them.
const (
	DefaultMaxHeaderBytes = 64 << 10
	DefaultHeaderTimeout  = 30 * time.Second
	DefaultDialTimeout    = 30 * time.Second
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultMaxConns       = 4096
	DefaultMaxProcesses   = 4096
)

// EnvDenied reports whether the environment variable name is removed from the command's
// environment by EnvDeny or BuiltinEnvDeny.
func (p Process) EnvDenied(name string) bool {
	for _, list := range [][]string{p.BuiltinEnvDeny, p.EnvDeny} {
		for _, pat := range list {
			if MatchEnv(pat, name) {
				return true
			}
		}
	}
	return false
}

// DeniesWrite lists every path that stays read-only: DenyWrite and BuiltinDenyWrite.
func (f Filesystem) DeniesWrite() []string {
	return append(append([]string(nil), f.DenyWrite...), f.BuiltinDenyWrite...)
}
