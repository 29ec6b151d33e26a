package netproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// SOCKS5 reply codes (RFC 1928, section 6).
const (
	socksOK              = 0x00
	socksFailure         = 0x01
	socksNotAllowed      = 0x02
	socksNetUnreachable  = 0x03
	socksHostUnreachable = 0x04
	socksRefused         = 0x05
	socksTTLExpired      = 0x06
	socksCmdUnsupported  = 0x07
	socksAddrUnsupported = 0x08
)

// upstreamError is a destination that was allowed but could not be reached.
type upstreamError struct {
	status int  // http.StatusBadGateway or http.StatusGatewayTimeout
	reply  byte // the SOCKS5 reply code
	msg    string
}

func (e *upstreamError) Error() string { return e.msg }

// dial resolves t, checks every address and connects to the first allowed address that
// answers, exactly as checked. It returns a refusal verdict if no address may be dialed,
// or an *upstreamError if none could be reached. The connection is tracked for Close.
func (p *Proxy) dial(ctx context.Context, t target) (net.Conn, netip.AddrPort, *verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	addrs := []netip.Addr{t.addr}
	if !t.addr.IsValid() {
		var err error
		addrs, err = p.cfg.Resolver.LookupNetIP(ctx, "ip", t.host)
		if err != nil {
			return nil, netip.AddrPort{}, nil, p.resolveError(ctx, t, err)
		}
		if len(addrs) == 0 {
			return nil, netip.AddrPort{}, nil, &upstreamError{http.StatusBadGateway, socksHostUnreachable,
				fmt.Sprintf("%s has no addresses", t.host)}
		}
	}
	var ok []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if p.addrCheck(a, t.port) == "" {
			ok = append(ok, a)
		}
	}
	if len(ok) == 0 {
		a := addrs[0].Unmap()
		v := p.privateVerdict(t, a, p.addrCheck(a, t.port))
		return nil, netip.AddrPortFrom(a, t.port), &v, nil
	}
	var last error
	var lastAddr netip.AddrPort
	for i, a := range ok {
		ap := netip.AddrPortFrom(a, t.port)
		actx := ctx
		if dl, has := ctx.Deadline(); has && len(ok)-i > 1 {
			// Leave time for the other addresses, as net.Dialer does.
			share := time.Until(dl) / time.Duration(len(ok)-i)
			var c context.CancelFunc
			actx, c = context.WithTimeout(ctx, max(share, 2*time.Second))
			defer c()
		}
		conn, err := p.cfg.Dialer.DialContext(actx, "tcp", ap.String())
		if err == nil {
			if !p.track(conn) {
				_ = conn.Close()
				return nil, ap, nil, ErrClosed
			}
			return conn, ap, nil, nil
		}
		last, lastAddr = err, ap
		if p.ctx.Err() != nil {
			return nil, ap, nil, ErrClosed
		}
	}
	return nil, lastAddr, nil, p.connectError(ctx, lastAddr, last)
}

func (p *Proxy) resolveError(ctx context.Context, t target, err error) error {
	if p.ctx.Err() != nil {
		return ErrClosed
	}
	var de *net.DNSError
	switch {
	case ctx.Err() != nil || errors.As(err, &de) && de.IsTimeout:
		return &upstreamError{http.StatusGatewayTimeout, socksTTLExpired,
			fmt.Sprintf("resolving %s timed out after %s", t.host, p.cfg.DialTimeout)}
	case errors.As(err, &de) && de.IsNotFound:
		return &upstreamError{http.StatusBadGateway, socksHostUnreachable,
			fmt.Sprintf("cannot resolve %s: no such host", t.host)}
	}
	return &upstreamError{http.StatusBadGateway, socksHostUnreachable,
		fmt.Sprintf("cannot resolve %s: %v", t.host, err)}
}

func (p *Proxy) connectError(ctx context.Context, a netip.AddrPort, err error) error {
	var ne net.Error
	switch {
	case ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout():
		return &upstreamError{http.StatusGatewayTimeout, socksTTLExpired,
			fmt.Sprintf("connecting to %s timed out after %s", a, p.cfg.DialTimeout)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &upstreamError{http.StatusBadGateway, socksRefused, fmt.Sprintf("%s refused the connection", a)}
	case errors.Is(err, syscall.ENETUNREACH):
		return &upstreamError{http.StatusBadGateway, socksNetUnreachable, fmt.Sprintf("network unreachable for %s", a)}
	case errors.Is(err, syscall.EHOSTUNREACH):
		return &upstreamError{http.StatusBadGateway, socksHostUnreachable, fmt.Sprintf("host %s unreachable", a)}
	}
	return &upstreamError{http.StatusBadGateway, socksFailure, fmt.Sprintf("connecting to %s: %v", a, err)}
}

// open decides t and, if it is allowed, dials it: the one path from a destination to a
// connection that every protocol takes. It audits the decision; on a refusal or failure it
// returns a nil conn and the verdict or error to report to the client.
func (p *Proxy) open(ctx context.Context, e *event, t target) (net.Conn, *verdict, error) {
	v := p.decide(t)
	if !v.allow {
		p.refuse(e, t, v)
		return nil, &v, nil
	}
	return p.openAllowed(ctx, e, t, v)
}

// openAllowed is open for a destination that decide allowed with v.
func (p *Proxy) openAllowed(ctx context.Context, e *event, t target, v verdict) (net.Conn, *verdict, error) {
	conn, ap, refusal, err := p.dial(ctx, t)
	if ap.IsValid() {
		e.Addr = ap.String()
	}
	if refusal != nil {
		p.refuse(e, t, *refusal)
		return nil, refusal, nil
	}
	e.Event, e.Decision, e.Rule, e.Host, e.Port = "decision", "allow", v.rule, t.host, t.port
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, nil, err
		}
		e.Error = err.Error()
		if ue, ok := err.(*upstreamError); ok && e.Proto != "socks5" {
			e.Status = ue.status
		}
	}
	p.audit.write(e)
	e.Error, e.Status = "", 0
	return conn, nil, err
}
