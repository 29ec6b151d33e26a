// Package hostmatch parses and matches the destination patterns of cordon's network policy.
//
// A pattern is one of:
//
//	example.com          that name only
//	*.example.com        every name under example.com, at any depth, but not example.com itself
//	*                    every name (refused as an allow rule, see [Pattern.CheckAllow])
//	192.0.2.7            that IPv4 address, written as a literal in the request
//	[2001:db8::1]        that IPv6 address (brackets optional without a port)
//
// Any of them may end in ":PORT" to match that port only. Names are compared in their canonical
// form (see [Canonical]): lower case, no trailing dot, internationalized names in punycode.
// The package is pure computation and safe for concurrent use.
package hostmatch

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Errors returned by [Parse], [Canonical] and [Pattern.CheckAllow]; match them with errors.Is.
var (
	ErrEmpty     = errors.New("empty host")
	ErrBadHost   = errors.New("invalid host name")
	ErrBadPort   = errors.New("invalid port")
	ErrBadWild   = errors.New("a wildcard may only be a leading \"*.\" label")
	ErrTooBroad  = errors.New("pattern too broad for an allow rule")
	maxNameBytes = 253
)

// Pattern is one parsed destination pattern. The zero Pattern matches nothing.
type Pattern struct {
	raw      string     // as written, for messages
	name     string     // canonical name, or the suffix after "*." for wildcards; "" for "*"
	wildcard bool       // "*.name" or "*"
	addr     netip.Addr // set for IP-literal patterns
	port     uint16     // 0: any port
	valid    bool
}

// Parse parses one pattern. It accepts what the package documentation lists and nothing else:
// no schemes, paths, user info, inner wildcards or empty labels.
func Parse(s string) (Pattern, error) {
	raw := s
	if s == "" {
		return Pattern{}, fmt.Errorf("pattern %q: %w", raw, ErrEmpty)
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return Pattern{}, fmt.Errorf("pattern %q: %w", raw, err)
	}
	p := Pattern{raw: raw, port: port, valid: true}
	switch {
	case host == "*":
		p.wildcard = true
		return p, nil
	case strings.HasPrefix(host, "*."):
		p.wildcard = true
		host = host[2:]
	}
	if strings.Contains(host, "*") {
		return Pattern{}, fmt.Errorf("pattern %q: %w", raw, ErrBadWild)
	}
	if a, ok := parseAddr(host); ok {
		if p.wildcard {
			return Pattern{}, fmt.Errorf("pattern %q: %w", raw, ErrBadWild)
		}
		p.addr = a
		return p, nil
	}
	name, err := Canonical(host)
	if err != nil {
		return Pattern{}, fmt.Errorf("pattern %q: %w", raw, err)
	}
	p.name = name
	return p, nil
}

// MustParse is Parse for patterns known to be valid; it panics on error. For tests and presets.
func MustParse(s string) Pattern {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as it was written.
func (p Pattern) String() string { return p.raw }

// Port returns the port the pattern is restricted to, or 0 for any port.
func (p Pattern) Port() uint16 { return p.port }

// IsAddr reports whether the pattern names an IP address rather than a name.
func (p Pattern) IsAddr() bool { return p.addr.IsValid() }

// CheckAllow returns an error wrapping [ErrTooBroad] if the pattern may not be used as an allow
// rule: "*" alone, or a wildcard over a public suffix such as "*.com" or "*.co.uk".
func (p Pattern) CheckAllow() error {
	if !p.valid || !p.wildcard {
		return nil
	}
	if p.name == "" {
		return fmt.Errorf("pattern %q matches every host: %w", p.raw, ErrTooBroad)
	}
	if isPublicSuffix(p.name) {
		return fmt.Errorf("pattern %q covers the public suffix %q: %w", p.raw, p.name, ErrTooBroad)
	}
	return nil
}

// Match reports whether the destination host:port matches the pattern. host must already be
// canonical (see [Canonical]) or an IP literal without brackets; port 0 matches only patterns
// without a port. Names never match IP patterns and IPs never match name patterns, so "*" does
// not cover IP literals.
func (p Pattern) Match(host string, port uint16) bool {
	if !p.valid {
		return false
	}
	if p.port != 0 && p.port != port {
		return false
	}
	if a, ok := parseAddr(host); ok {
		return p.addr.IsValid() && p.addr == a
	}
	if p.addr.IsValid() {
		return false
	}
	if !p.wildcard {
		return host == p.name
	}
	if p.name == "" {
		return host != ""
	}
	return len(host) > len(p.name)+1 && strings.HasSuffix(host, p.name) && host[len(host)-len(p.name)-1] == '.'
}

// Canonical returns the canonical form of a host name: IDNA (lookup profile) to punycode, lower
// case, without a trailing dot. It refuses anything that is not a valid DNS host name, such as
// names with "@", "#", "/", spaces, empty labels or labels longer than 63 bytes. IP literals are
// returned in their canonical text form (IPv6 without brackets or zone).
func Canonical(host string) (string, error) {
	if host == "" {
		return "", ErrEmpty
	}
	if a, ok := parseAddr(host); ok {
		return a.String(), nil
	}
	h := strings.TrimSuffix(host, ".")
	if h == "" {
		return "", fmt.Errorf("%w: %q", ErrBadHost, host)
	}
	if !utf8.ValidString(h) {
		return "", fmt.Errorf("%w: %q is not valid UTF-8", ErrBadHost, host)
	}
	ascii, err := idna.Lookup.ToASCII(h)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadHost, host, err)
	}
	// The punycode form must itself be a valid name that maps to itself; otherwise two
	// spellings could canonicalize differently.
	if again, err := idna.Lookup.ToASCII(ascii); err != nil || again != ascii {
		return "", fmt.Errorf("%w: %q has no stable ASCII form", ErrBadHost, host)
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) > maxNameBytes {
		return "", fmt.Errorf("%w: %q is longer than %d bytes", ErrBadHost, host, maxNameBytes)
	}
	for _, label := range strings.Split(ascii, ".") {
		if err := checkLabel(label); err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrBadHost, host, err)
		}
	}
	// A name whose labels are all numbers would be read as an IPv4 address by some resolvers
	// (inet_aton accepts "127.1" and "0x7f.1"); refuse it rather than guess.
	if allNumeric(ascii) {
		return "", fmt.Errorf("%w: %q looks like a numeric IPv4 address", ErrBadHost, host)
	}
	return ascii, nil
}

// allNumeric reports whether every label is a number as inet_aton reads it: decimal, octal or
// "0x" hexadecimal.
func allNumeric(name string) bool {
	for _, l := range strings.Split(name, ".") {
		digits := "0123456789"
		if strings.HasPrefix(l, "0x") {
			l, digits = l[2:], "0123456789abcdef"
		}
		if strings.Trim(l, digits) != "" {
			return false
		}
	}
	return true
}

func checkLabel(l string) error {
	if l == "" {
		return errors.New("empty label")
	}
	if len(l) > 63 {
		return errors.New("label longer than 63 bytes")
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i != 0 && i != len(l)-1:
		case c == '_': // seen in real names (SRV-like hosts); harmless for matching
		default:
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}

// parseAddr parses an IP literal, with or without brackets; zones are refused.
func parseAddr(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// splitHostPort splits "host", "host:port", "[v6]", "[v6]:port" and a bare IPv6 literal.
func splitHostPort(s string) (string, uint16, error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("%w: missing \"]\"", ErrBadHost)
		}
		host, rest := s[:end+1], s[end+1:]
		if rest == "" {
			return host, 0, nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", 0, fmt.Errorf("%w: unexpected %q after \"]\"", ErrBadHost, rest)
		}
		port, err := ParsePort(rest[1:])
		return host, port, err
	}
	if strings.Count(s, ":") > 1 { // bare IPv6 literal: no port possible
		return s, 0, nil
	}
	host, portStr, found := strings.Cut(s, ":")
	if !found {
		return s, 0, nil
	}
	port, err := ParsePort(portStr)
	return host, port, err
}

// ParsePort parses a decimal TCP port in 1..65535.
func ParsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %q", ErrBadPort, s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%w: %q", ErrBadPort, s)
	}
	return uint16(n), nil
}

func isPublicSuffix(name string) bool {
	suffix, icann := publicsuffix.PublicSuffix(name)
	// PublicSuffix falls back to the last label for unknown TLDs; treat a single label as a
	// suffix too ("*.internal" covers a whole TLD). Private-section suffixes (github.io,
	// appspot.com) count as well: each subdomain there belongs to a different owner.
	_ = icann
	return suffix == name || !strings.Contains(name, ".")
}
