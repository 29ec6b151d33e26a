package netproxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cordonsh/cordon/hostmatch"
)

// caLifetime is how long a run's CA and its leaf certificates are valid. A run is the CA's
// whole life: its key exists only in this process's memory and is gone when the run ends,
// so the lifetime only bounds what a copied bundle could be trusted for.
const caLifetime = 7 * 24 * time.Hour

// caBackdate is how far NotBefore lies in the past, for clocks that disagree slightly
// (the sandbox shares the host's clock, but a container's may not).
const caBackdate = 5 * time.Minute

// authority is the per-run certificate authority of TLS interception. Its certificate is
// name-constrained to the intercepted hosts and cannot sign intermediates; its key never
// leaves this struct.
type authority struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	hosts   []hostmatch.Pattern

	mu     sync.Mutex
	leaves map[string]*tls.Certificate // by canonical host
}

// constraints derives the CA's permitted names from the intercepted host patterns: a DNS
// constraint "example.com" permits that name and its subdomains, ".example.com" only the
// subdomains; IP patterns permit exactly that address. IP addresses are excluded altogether
// when no pattern names one, and names (but for the reserved "invalid") when no pattern
// names one.
func constraints(hosts []hostmatch.Pattern) (dns []string, ips []*net.IPNet, excluded []*net.IPNet) {
	seen := map[string]bool{}
	for _, h := range hosts {
		s := h.String()
		if h.IsAddr() {
			host := s
			if ap, err := netip.ParseAddrPort(s); err == nil {
				host = ap.Addr().String()
			} else {
				host = strings.Trim(strings.TrimSuffix(s, portSuffix(s, h.Port())), "[]")
			}
			a, err := netip.ParseAddr(host)
			if err != nil || seen[a.String()] {
				continue
			}
			seen[a.String()] = true
			ips = append(ips, &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())})
			continue
		}
		name := strings.TrimSuffix(s, portSuffix(s, h.Port()))
		wild := strings.HasPrefix(name, "*.")
		name = strings.TrimPrefix(name, "*.")
		c, err := hostmatch.Canonical(name)
		if err != nil {
			continue
		}
		if wild {
			c = "." + c
		}
		if !seen[c] {
			seen[c] = true
			dns = append(dns, c)
		}
	}
	if len(dns) == 0 {
		// Without a name to permit, permit only the reserved top-level domain "invalid"
		// (RFC 6761): an empty list would permit every name.
		dns = []string{"invalid"}
	}
	if len(ips) == 0 {
		excluded = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
	}
	return dns, ips, excluded
}

func portSuffix(s string, port uint16) string {
	if port == 0 {
		return ""
	}
	return fmt.Sprintf(":%d", port)
}

// newAuthority makes a fresh CA for hosts.
func newAuthority(hosts []hostmatch.Pattern, now time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("interception CA key: %w", err)
	}
	dns, ips, excluded := constraints(hosts)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			CommonName:   "cordon interception CA (this run only)",
			Organization: []string{"cordon"},
		},
		NotBefore:                   now.Add(-caBackdate),
		NotAfter:                    now.Add(caLifetime),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         dns,
		PermittedIPRanges:           ips,
		ExcludedIPRanges:            excluded,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("interception CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("interception CA certificate: %w", err)
	}
	return &authority{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
		hosts:   hosts,
		leaves:  map[string]*tls.Certificate{},
	}, nil
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

// leaf returns the certificate for host (canonical name or IP address), minting it on first
// use. Leaves share the CA's validity period.
func (a *authority) leaf(host string) (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.leaves[host]; ok {
		return c, nil
	}
	c, err := a.mint(host)
	if err != nil {
		return nil, err
	}
	a.leaves[host] = c
	return c, nil
}

func (a *authority) mint(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("leaf key for %s: %w", host, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: host},
		NotBefore:             a.cert.NotBefore,
		NotAfter:              a.cert.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("leaf certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, a.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}
