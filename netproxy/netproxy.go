// Package netproxy is cordon's egress proxy: one listener that serves HTTP forward proxying,
// CONNECT tunnels and SOCKS5, decides every destination against an allow list and a deny
// list, resolves names and dials exactly the address it checked, and writes audit events.
package netproxy

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cordonsh/cordon/hostmatch"
)

// Config configures a Proxy. The zero Config (with a Token) refuses every destination.
type Config struct {
	// Allow lists the destinations the proxy lets through. Defaults to none.
	Allow []hostmatch.Pattern
	// Deny lists destinations refused even if Allow matches. Defaults to none.
	Deny []hostmatch.Pattern
	// AllowPrivate lists the non-public ranges a destination may resolve to. Defaults to none.
	AllowPrivate []netip.Prefix
	// Token is the per-run proxy credential a client must present. Required.
	Token string
	// MaxHeaderBytes, HeaderTimeout, DialTimeout, IdleTimeout and MaxConns are the limits;
	// zero values take the defaults of package policy.
	MaxHeaderBytes int
	HeaderTimeout  time.Duration
	DialTimeout    time.Duration
	IdleTimeout    time.Duration
	MaxConns       int
	// Logger receives debug logs. Defaults to a logger that discards.
	Logger *slog.Logger
}

// Proxy serves connections on any number of listeners until closed.
type Proxy struct {
	cfg    Config
	mu     sync.Mutex
	lns    []net.Listener
	closed bool
}

// New validates cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Token == "" {
		return nil, errors.New("netproxy: a token is required")
	}
	return &Proxy{cfg: cfg}, nil
}

// Serve accepts connections on l until l or the Proxy is closed.
func (p *Proxy) Serve(l net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return net.ErrClosed
	}
	p.lns = append(p.lns, l)
	p.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		// Placeholder until the proxy is built: refuse everything.
		_, _ = c.Write([]byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		_ = c.Close()
	}
}

// Close stops every listener and connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, l := range p.lns {
		_ = l.Close()
	}
	return nil
}

// URL returns the proxy URL, with the token, for a listener address such as "127.0.0.1:3128".
func (p *Proxy) URL(addr string) string {
	return "http://cordon:" + p.cfg.Token + "@" + addr
}
