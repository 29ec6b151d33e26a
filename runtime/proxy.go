package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cordonsh/cordon/netproxy"
	"github.com/cordonsh/cordon/policy"
)

// ProxyConfig translates a policy into the egress proxy's configuration, with a fresh
// random token: the allow and deny lists, allow_private, the [proxy] limits, and the policy
// file that a block message tells the user to edit. It does not open the audit log (see
// OpenAuditLog); Config.Audit is left nil.
func ProxyConfig(p *policy.Policy, logger *slog.Logger) netproxy.Config {
	return netproxy.Config{
		Allow:          p.Network.Allow,
		Deny:           p.Network.Deny,
		AllowPrivate:   p.Network.AllowPrivate,
		Token:          newToken(),
		MaxHeaderBytes: p.Proxy.MaxHeaderBytes,
		HeaderTimeout:  p.Proxy.HeaderTimeout,
		DialTimeout:    p.Proxy.DialTimeout,
		IdleTimeout:    p.Proxy.IdleTimeout,
		MaxConns:       p.Proxy.MaxConns,
		PolicySource:   policySource(p),
		Logger:         logger,
	}
}

// proxyConfig is ProxyConfig for Run.
func proxyConfig(p *policy.Policy, logger *slog.Logger) netproxy.Config {
	return ProxyConfig(p, logger)
}

// policySource names the layer a user should add a network rule to: the last policy file
// (TOML) among the sources, "flags" if only flags changed the built-in policy, or "" if
// there is no policy file to name (the block message then suggests cordon.toml).
func policySource(p *policy.Policy) string {
	src := ""
	for _, s := range p.Sources {
		switch {
		case s == "flags":
			if src == "" {
				src = "flags"
			}
		case strings.HasPrefix(s, "preset "):
		case strings.HasSuffix(s, ".json"):
			src = "" // an imported sandbox-runtime file: no TOML line to point at
		default:
			if abs, err := filepath.Abs(s); err == nil {
				s = abs
			}
			src = s
		}
	}
	return src
}

// OpenAuditLog opens the policy's [audit] log for appending, creating it with mode 0600,
// or returns nil if the policy names none. The caller sets netproxy.Config.Audit to it and
// closes it after the proxy.
func OpenAuditLog(p *policy.Policy) (*os.File, error) {
	if p.Audit.Log == "" {
		return nil, nil
	}
	f, err := os.OpenFile(p.Audit.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return f, nil
}

// WriteBlockedSummary writes what the proxy refused during a run, for the end of the run,
// or nothing if it refused nothing.
func WriteBlockedSummary(w io.Writer, blocked []netproxy.Blocked) {
	if len(blocked) == 0 {
		return
	}
	total := 0
	for _, b := range blocked {
		total += b.Count
	}
	fmt.Fprintf(w, "cordon: the proxy blocked %d %s to %d %s:\n", total, plural(total, "request", "requests"),
		len(blocked), plural(len(blocked), "destination", "destinations"))
	for _, b := range blocked {
		fmt.Fprintf(w, "  %s  %d× %s\n", b.Host, b.Count, b.Rule)
		if b.Fix != "" {
			fmt.Fprintf(w, "      to allow it: %s\n", b.Fix)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b[:])
}
