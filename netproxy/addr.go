package netproxy

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

const classOwnListener = "the proxy's own listener"

// addrClass is a named range of addresses that are not globally routable.
type addrClass struct {
	prefix netip.Prefix
	name   string
}

// nonPublic lists the ranges refused unless AllowPrivate covers them, most specific first
// where they overlap. IPv6 outside 2000::/3 is refused as well (see classify).
var nonPublic = func() []addrClass {
	list := []struct{ cidr, name string }{
		{"169.254.169.254/32", "link-local (cloud metadata service)"},
		{"0.0.0.0/8", "unspecified (\"this network\")"},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "shared address space (carrier-grade NAT)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved (including broadcast)"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "IPv4-compatible (deprecated)"},
		{"64:ff9b:1::/48", "local-use NAT64"},
		{"100::/64", "discard-only"},
		{"2001::/32", "Teredo tunnel"},
		{"2001::/23", "IETF protocol assignments"},
		{"2001:db8::/32", "documentation"},
		{"2002::/16", "6to4 tunnel"},
		{"3fff::/20", "documentation"},
		{"fd00:ec2::254/128", "unique-local (cloud metadata service)"},
		{"fc00::/7", "unique-local"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated)"},
		{"ff00::/8", "multicast"},
	}
	out := make([]addrClass, len(list))
	for i, e := range list {
		out[i] = addrClass{netip.MustParsePrefix(e.cidr), e.name}
	}
	return out
}()

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	global6   = netip.MustParsePrefix("2000::/3")
	mapped4in = netip.MustParsePrefix("::ffff:0:0/96")
)

// classify returns "" if a is globally routable, else what kind of address it is.
// IPv4-mapped addresses are classified as the IPv4 address they carry (that is what a
// connection to them reaches), and so are well-known-prefix NAT64 addresses (RFC 6052
// forbids that prefix for non-global IPv4 addresses, and a DNS64 network needs it for
// every IPv4-only site). Every other IPv4-in-IPv6 form (6to4, Teredo, IPv4-compatible,
// local-use NAT64) is refused outright.
func classify(a netip.Addr) string {
	a = a.WithZone("")
	if mapped4in.Contains(a) {
		a = a.Unmap()
	}
	if nat64.Contains(a) {
		b := a.As16()
		inner := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if c := classify(inner); c != "" {
			return "NAT64 form of " + inner.String() + ", " + c
		}
		return ""
	}
	for _, c := range nonPublic {
		if c.prefix.Contains(a) {
			return c.name
		}
	}
	if a.Is6() && !global6.Contains(a) {
		return "not global unicast"
	}
	return ""
}

// addrCheck says whether the proxy may connect to a: "" if it may, else why not.
func (p *Proxy) addrCheck(a netip.Addr, port uint16) string {
	a = a.Unmap()
	for _, l := range p.listenerAddrs() {
		if l.Port() == port && (l.Addr().Unmap() == a || l.Addr().IsUnspecified() && p.isLocal(a)) {
			return classOwnListener
		}
	}
	for _, pre := range p.cfg.AllowPrivate {
		if pre.Contains(a) {
			return ""
		}
	}
	if c := classify(a); c != "" {
		return c
	}
	if p.isLocal(a) {
		return "this host's own address"
	}
	return ""
}

func (p *Proxy) isLocal(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	for _, l := range p.local() {
		if l == a {
			return true
		}
	}
	return false
}

// localAddrs caches the addresses of this host's interfaces for a few seconds.
type localAddrs struct {
	log   *slog.Logger
	mu    sync.Mutex
	at    time.Time
	addrs []netip.Addr
}

func newLocalAddrs(log *slog.Logger) *localAddrs { return &localAddrs{log: log} }

func (l *localAddrs) get() []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.at) < 5*time.Second {
		return l.addrs
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		// Keep the last known list; every non-public address is refused anyway.
		l.log.Warn("netproxy: cannot list this host's addresses", "err", err)
		return l.addrs
	}
	l.addrs = l.addrs[:0]
	for _, ia := range ifaddrs {
		if n, ok := ia.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				l.addrs = append(l.addrs, a.Unmap())
			}
		}
	}
	l.at = time.Now()
	return l.addrs
}

// isTemporaryAccept reports whether an Accept error is worth retrying.
func isTemporaryAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
