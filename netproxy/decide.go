package netproxy

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/cordonsh/cordon/hostmatch"
)

// target is a destination as the proxy decides and dials it.
type target struct {
	host string     // canonical name (hostmatch.Canonical), or the address's text form
	addr netip.Addr // valid for IP-literal destinations; never IPv4-mapped
	port uint16
}

// String returns "host:port", with IPv6 addresses in brackets: the form an allow rule takes.
func (t target) String() string { return net.JoinHostPort(t.host, strconv.Itoa(int(t.port))) }

// hostHeader returns the Host header value for t: the port is left out if it is def.
func (t target) hostHeader(def uint16) string {
	if t.port == def {
		if t.addr.Is6() {
			return "[" + t.host + "]"
		}
		return t.host
	}
	return t.String()
}

// verdict is a decision and the rule that made it.
type verdict struct {
	allow  bool
	rule   string // `network.allow "x"`, `network.deny "x"`, "not in network.allow", ...
	reason string // refusals: one line for the user
	fix    string // refusals: what would allow it, or "" if the policy cannot
}

// decide applies the deny list, then the allow list, to t. Name patterns never cover IP
// literals: an address is allowed only by a rule that names it.
func (p *Proxy) decide(t target) verdict {
	for _, d := range p.cfg.Deny {
		if d.Match(t.host, t.port) {
			return verdict{
				rule:   fmt.Sprintf("network.deny %q", d.String()),
				reason: fmt.Sprintf("%s matches the network.deny rule %q", t, d.String()),
				fix:    fmt.Sprintf("remove %q from network.deny (deny rules beat allow rules)", d.String()),
			}
		}
	}
	for _, a := range p.cfg.Allow {
		if a.Match(t.host, t.port) {
			return verdict{allow: true, rule: fmt.Sprintf("network.allow %q", a.String())}
		}
	}
	v := verdict{rule: "not in network.allow", fix: p.fixAllow(t.String())}
	if t.addr.IsValid() {
		v.rule = "IP address not in network.allow"
		v.reason = fmt.Sprintf("%s is an IP address, and no network.allow rule names it (name patterns never cover addresses)", t)
		return v
	}
	v.reason = fmt.Sprintf("%s is not in network.allow", t)
	for _, a := range p.cfg.Allow {
		if a.Port() != 0 && a.Match(t.host, a.Port()) {
			v.reason += fmt.Sprintf(" (the rule %q allows only port %d)", a.String(), a.Port())
			break
		}
	}
	return v
}

// privateVerdict is the refusal of a destination whose addresses are all refused.
func (p *Proxy) privateVerdict(t target, a netip.Addr, class string) verdict {
	v := verdict{rule: "network.allow_private"}
	if t.addr.IsValid() {
		v.reason = fmt.Sprintf("%s is refused as %s", t, class)
	} else {
		v.reason = fmt.Sprintf("%s resolves to %s, refused as %s", t, a, class)
	}
	if class == classOwnListener {
		return v
	}
	prefix := netip.PrefixFrom(a.WithZone(""), a.BitLen()).String()
	v.fix = fmt.Sprintf("add %q to network.allow_private in %s", prefix, p.policyFile())
	return v
}

// fixAllow says how to add pattern to the allow list, given where the policy comes from.
func (p *Proxy) fixAllow(pattern string) string {
	switch p.cfg.PolicySource {
	case "flags":
		return fmt.Sprintf("run with --allow-domain %s", pattern)
	default:
		return fmt.Sprintf("add %q to network.allow in %s, or run with --allow-domain %s", pattern, p.policyFile(), pattern)
	}
}

func (p *Proxy) policyFile() string {
	switch p.cfg.PolicySource {
	case "", "flags":
		return "a policy file (cordon.toml)"
	}
	return p.cfg.PolicySource
}

// canonicalTarget builds a target from a host (name or address, no brackets) and a port, as
// a SOCKS5 request names it.
func canonicalTarget(host string, port uint16) (target, error) {
	c, err := hostmatch.Canonical(host)
	if err != nil {
		return target{}, err
	}
	t := target{host: c, port: port}
	if a, err := netip.ParseAddr(c); err == nil {
		t.addr = a.Unmap()
		t.host = t.addr.String()
	}
	return t, nil
}
