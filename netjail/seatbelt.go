package netjail

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cordonsh/cordon/fsjail"
)

// ErrBadSeatbelt: a network setting cannot be written into a macOS sandbox profile.
var ErrBadSeatbelt = errors.New("netjail: bad sandbox profile setting")

// SeatbeltConfig is the network part of a policy, for a macOS Seatbelt profile. macOS has
// no network namespaces: the proxy listens on the machine's loopback, and the profile lets
// the command reach it and nothing else. Every other network operation falls to the
// profile's (deny default), whose message tags the denial.
type SeatbeltConfig struct {
	// ProxyPorts are the TCP ports on 127.0.0.1 the command may connect to: the proxy's and
	// those of the upstream routes. Defaults to none (no network at all).
	ProxyPorts []uint16
	// UnixSockets are the pathname unix sockets the command may connect to, in the spelling
	// the kernel checks (symbolic links resolved, see fsjail.ResolvePath). Defaults to none.
	UnixSockets []string
	// AllowLocalBind lets the command listen on loopback and accept connections there. Since
	// the machine has one loopback, the command can then also connect to every loopback port,
	// the servers of other programs included: a Seatbelt profile cannot tell the command's
	// own servers from others. Defaults to false.
	AllowLocalBind bool
}

// SeatbeltRules returns the network rules of a Seatbelt profile for cfg.
func SeatbeltRules(cfg SeatbeltConfig) (string, error) {
	var b strings.Builder
	if len(cfg.ProxyPorts) > 0 {
		b.WriteString("; network: the proxy on loopback, over IPv4 TCP\n(allow network-outbound")
		for _, p := range cfg.ProxyPorts {
			if p == 0 {
				return "", fmt.Errorf("%w: proxy port 0", ErrBadSeatbelt)
			}
			b.WriteString("\n    (remote tcp4 \"localhost:" + strconv.Itoa(int(p)) + "\")")
		}
		b.WriteString(")\n")
	}
	// Creating a unix socket (socketpair, an unnamed one) reaches nothing; connecting to a
	// path is what allow_unix_sockets decides. Binding one is never allowed.
	b.WriteString("; network: unix sockets, connected by path only if allow_unix_sockets names it\n")
	b.WriteString("(allow system-socket\n    (socket-domain AF_UNIX))\n")
	if len(cfg.UnixSockets) > 0 {
		b.WriteString("(allow network-outbound")
		for _, s := range cfg.UnixSockets {
			if !filepath.IsAbs(s) || filepath.Clean(s) != s || strings.IndexByte(s, 0) >= 0 {
				return "", fmt.Errorf("%w: unix socket %q is not an absolute, clean path", ErrBadSeatbelt, s)
			}
			b.WriteString("\n    (remote unix-socket (subpath " + fsjail.QuoteSBPL(s) + "))")
		}
		b.WriteString(")\n")
	}
	if cfg.AllowLocalBind {
		b.WriteString("; network: allow_local_bind: servers on loopback, which the command may also reach\n")
		b.WriteString("(allow network-bind network-inbound\n    (local ip \"localhost:*\"))\n")
		b.WriteString("(allow network-outbound\n    (remote ip \"localhost:*\"))\n")
	}
	return b.String(), nil
}
