package netproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// socksError is a SOCKS5 request that cannot be served; reply is the code to send, or 0
// if the handshake failed before a request could be answered (then the connection is just
// closed, after any method or authentication reply already sent).
type socksError struct {
	reply byte
	msg   string
}

func (e *socksError) Error() string { return "socks5: " + e.msg }
func (e *socksError) Unwrap() error { return errSOCKS }

// socksHandshakeMax bounds the bytes of a whole handshake: greeting (2+255),
// authentication (3+255+255) and request (6+255+1).
const socksHandshakeMax = 1100

// socksHandshake runs the server side of a SOCKS5 handshake (RFC 1928, with RFC 1929
// username/password authentication) up to the CONNECT request, and returns its
// destination. With noAuth false only username/password is offered and check decides
// it; with noAuth true the client may also use no authentication. It writes the method
// and authentication replies to w; the caller writes the reply to the request.
func socksHandshake(r *bufio.Reader, w io.Writer, noAuth bool, check func(user, pass string) bool) (target, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return target{}, err
	}
	if b[0] != 5 {
		return target{}, &socksError{0, fmt.Sprintf("version %d", b[0])}
	}
	methods := make([]byte, b[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return target{}, err
	}
	method := byte(0xff)
	for _, m := range methods {
		switch {
		case m == 0x00 && noAuth:
			method = 0x00 // preferred: no point in checking credentials that grant nothing
		case m == 0x02 && method == 0xff:
			method = 0x02
		}
	}
	if _, err := w.Write([]byte{5, method}); err != nil {
		return target{}, err
	}
	switch method {
	case 0xff:
		return target{}, &socksError{0, "the client offered no acceptable authentication method (cordon needs username/password)"}
	case 0x02:
		user, pass, err := readUserPass(r)
		if err != nil {
			return target{}, err
		}
		ok := noAuth || check(user, pass)
		status := byte(0)
		if !ok {
			status = 1
		}
		if _, err := w.Write([]byte{1, status}); err != nil {
			return target{}, err
		}
		if !ok {
			return target{}, &socksError{0, "wrong username or password"}
		}
	}

	if _, err := io.ReadFull(r, b[:4]); err != nil {
		return target{}, err
	}
	if b[0] != 5 {
		return target{}, &socksError{socksFailure, fmt.Sprintf("request version %d", b[0])}
	}
	cmd, atyp := b[1], b[3]
	var t target
	switch atyp {
	case 1:
		var a [4]byte
		if _, err := io.ReadFull(r, a[:]); err != nil {
			return target{}, err
		}
		t.addr = netip.AddrFrom4(a)
	case 4:
		var a [16]byte
		if _, err := io.ReadFull(r, a[:]); err != nil {
			return target{}, err
		}
		t.addr = netip.AddrFrom16(a).Unmap()
	case 3:
		n, err := r.ReadByte()
		if err != nil {
			return target{}, err
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(r, name); err != nil {
			return target{}, err
		}
		t.host = string(name)
	default:
		return target{}, &socksError{socksAddrUnsupported, fmt.Sprintf("address type %d", atyp)}
	}
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return target{}, err
	}
	port := uint16(b[0])<<8 | uint16(b[1])
	switch cmd {
	case 1:
	case 2:
		return target{}, &socksError{socksCmdUnsupported, "BIND is not supported"}
	case 3:
		return target{}, &socksError{socksCmdUnsupported, "UDP ASSOCIATE is not supported: cordon proxies TCP only"}
	default:
		return target{}, &socksError{socksCmdUnsupported, fmt.Sprintf("command %d", cmd)}
	}
	if port == 0 {
		return target{}, &socksError{socksFailure, "port 0"}
	}
	if t.addr.IsValid() {
		t.host, t.port = t.addr.String(), port
		return t, nil
	}
	ct, err := canonicalTarget(t.host, port)
	if err != nil {
		return target{}, &socksError{socksHostUnreachable, fmt.Sprintf("invalid host name %q: %v", clip(t.host), err)}
	}
	return ct, nil
}

func readUserPass(r *bufio.Reader) (user, pass string, err error) {
	ver, err := r.ReadByte()
	if err != nil {
		return "", "", err
	}
	if ver != 1 {
		return "", "", &socksError{0, fmt.Sprintf("authentication version %d", ver)}
	}
	read := func() (string, error) {
		n, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		s := make([]byte, n)
		_, err = io.ReadFull(r, s)
		return string(s), err
	}
	if user, err = read(); err != nil {
		return "", "", err
	}
	pass, err = read()
	return user, pass, err
}

// socksReply writes a reply to a request; bound is the proxy's end of the upstream
// connection on success.
func socksReply(w io.Writer, code byte, bound net.Addr) error {
	msg := []byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0}
	if ta, ok := bound.(*net.TCPAddr); ok && code == socksOK {
		ap := ta.AddrPort()
		a := ap.Addr().Unmap()
		if a.Is4() {
			a4 := a.As4()
			msg = append(msg[:4], a4[:]...)
		} else {
			a16 := a.As16()
			msg = append(append(msg[:3], 4), a16[:]...)
		}
		msg = append(msg, byte(ap.Port()>>8), byte(ap.Port()))
	}
	_, err := w.Write(msg)
	return err
}

// serveSOCKS serves a SOCKS5 client: handshake, decision, reply, tunnel.
func (p *Proxy) serveSOCKS(c net.Conn, br *bufio.Reader, lim *limitReader) {
	client := c.RemoteAddr().String()
	_ = c.SetWriteDeadline(time.Now().Add(p.cfg.HeaderTimeout))
	lim.n = socksHandshakeMax
	t, err := socksHandshake(br, c, p.cfg.NoAuth, p.checkCredentials)
	lim.n = -1
	if err != nil {
		var se *socksError
		if !errors.As(err, &se) {
			return // the client went away, timed out or sent too much
		}
		ev := "bad_request"
		if se.msg == "wrong username or password" {
			ev = "auth_failed"
		}
		p.audit.write(&event{Event: ev, Proto: "socks5", Client: client, Error: se.msg})
		if se.reply != 0 {
			_ = socksReply(c, se.reply, nil)
		}
		return
	}
	_ = c.SetDeadline(time.Time{})
	e := &event{Proto: "socks5", Client: client}
	up, v, err := p.open(p.ctx, e, t)
	switch {
	case v != nil:
		_ = socksReply(c, socksNotAllowed, nil)
		return
	case errors.Is(err, ErrClosed):
		return
	case err != nil:
		code := byte(socksFailure)
		var ue *upstreamError
		if errors.As(err, &ue) {
			code = ue.reply
		}
		_ = socksReply(c, code, nil)
		return
	}
	defer p.untrack(up)
	_ = c.SetWriteDeadline(time.Now().Add(p.cfg.IdleTimeout))
	if err := socksReply(c, socksOK, up.LocalAddr()); err != nil {
		return
	}
	start := time.Now()
	head := bytes.Clone(peekBuffered(br))
	upB, downB, terr := p.tunnel(c, head, up, nil)
	p.auditClose(e, start, upB, downB, terr)
}
