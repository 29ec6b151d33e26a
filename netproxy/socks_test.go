package netproxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
)

// socksRequest builds a SOCKS5 request: atyp 0 sends host as a name (ATYP 3).
func socksRequest(cmd byte, host string, port uint16, atyp byte) []byte {
	req := []byte{5, cmd, 0}
	switch atyp {
	case 0, 3:
		req = append(req, 3, byte(len(host)))
		req = append(req, host...)
	case 1:
		a := netip.MustParseAddr(host).As4()
		req = append(append(req, 1), a[:]...)
	case 4:
		a := netip.MustParseAddr(host).As16()
		req = append(append(req, 4), a[:]...)
	default:
		req = append(req, atyp, 0, 0, 0, 0)
	}
	return append(req, byte(port>>8), byte(port))
}

func userPass(user, pass string) []byte {
	b := []byte{1, byte(len(user))}
	b = append(b, user...)
	b = append(b, byte(len(pass)))
	return append(b, pass...)
}

// socksTry runs a whole handshake with the token and returns the reply code to the request.
func socksTry(t *testing.T, e *env, cmd byte, host string, port uint16, atyp byte) (byte, net.Conn) {
	t.Helper()
	c := e.dial()
	msg := append([]byte{5, 1, 2}, userPass("cordon", testToken)...)
	msg = append(msg, socksRequest(cmd, host, port, atyp)...)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var resp [4]byte
	if _, err := io.ReadFull(c, resp[:4]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp[:], []byte{5, 2, 1, 0}) {
		t.Fatalf("method and auth replies % x", resp)
	}
	var rep [4]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		t.Fatalf("no reply to the request: %v", err)
	}
	n := 4 + 2
	if rep[3] == 4 {
		n = 16 + 2
	}
	rest := make([]byte, n)
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatal(err)
	}
	return rep[1], c
}

// socksConnect opens a SOCKS5 connection and fails the test unless it succeeds.
func socksConnect(t *testing.T, e *env, host, port string, atyp byte) net.Conn {
	t.Helper()
	p, _ := strconv.Atoi(port)
	code, c := socksTry(t, e, 1, host, uint16(p), atyp)
	if code != socksOK {
		t.Fatalf("SOCKS5 CONNECT %s:%s: reply %d", host, port, code)
	}
	return c
}

func TestSOCKS5Replies(t *testing.T) {
	up := startUpstreams(t)
	cfg := testConfig()
	cfg.Allow = append(cfg.Allow, patterns("127.0.0.1")...)
	e := startProxy(t, cfg)
	p, _ := strconv.Atoi(port(up.http))
	closed := func() uint16 {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return uint16(l.Addr().(*net.TCPAddr).Port)
	}()
	for _, tc := range []struct {
		name string
		cmd  byte
		host string
		port uint16
		atyp byte
		want byte
	}{
		{"allowed name", 1, "allowed.test", uint16(p), 3, socksOK},
		{"allowed IPv4 literal (rule names it)", 1, "127.0.0.1", uint16(p), 1, socksOK},
		{"IPv4 literal as a name", 1, "127.0.0.1", uint16(p), 3, socksOK},
		{"IPv4 literal not named", 1, "127.0.0.2", uint16(p), 1, socksNotAllowed},
		{"IPv6 literal not named", 1, "::1", uint16(p), 4, socksNotAllowed},
		{"IPv4-mapped IPv6 literal not named", 1, "::ffff:127.0.0.2", uint16(p), 4, socksNotAllowed},
		{"denied name", 1, "denied.test", uint16(p), 3, socksNotAllowed},
		{"deny rule", 1, "bad.allowed.test", uint16(p), 3, socksNotAllowed},
		{"suffix trick", 1, "allowed.test.evil.test", uint16(p), 3, socksNotAllowed},
		{"fragment trick", 1, "evil.test#@allowed.test", uint16(p), 3, socksHostUnreachable},
		{"user info trick", 1, "evil.test@allowed.test", uint16(p), 3, socksHostUnreachable},
		{"no such host", 1, "nx.allowed.test", uint16(p), 3, socksHostUnreachable},
		{"refused", 1, "allowed.test", closed, 3, socksRefused},
		{"BIND", 2, "allowed.test", uint16(p), 3, socksCmdUnsupported},
		{"UDP ASSOCIATE", 3, "allowed.test", uint16(p), 3, socksCmdUnsupported},
		{"unknown command", 9, "allowed.test", uint16(p), 3, socksCmdUnsupported},
		{"unknown address type", 1, "", uint16(p), 7, socksAddrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _ := socksTry(t, e, tc.cmd, tc.host, tc.port, tc.atyp)
			if code != tc.want {
				t.Errorf("reply %d, want %d", code, tc.want)
			}
		})
	}
}

func TestSOCKS5Auth(t *testing.T) {
	e := startProxy(t, testConfig())
	t.Run("no-auth only is refused", func(t *testing.T) {
		c := e.dial()
		_, _ = c.Write([]byte{5, 1, 0})
		var b [2]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b != [2]byte{5, 0xff} {
			t.Errorf("method reply % x, %v; want 05 ff", b, err)
		}
		if _, err := c.Read(b[:]); err == nil {
			t.Error("connection left open")
		}
	})
	for _, cred := range [][2]string{{"cordon", "wrong"}, {"other", testToken}, {"cordon", ""}, {"", ""}} {
		t.Run("user "+cred[0]+" pass "+cred[1], func(t *testing.T) {
			c := e.dial()
			_, _ = c.Write(append([]byte{5, 2, 0, 2}, userPass(cred[0], cred[1])...))
			var b [4]byte
			if _, err := io.ReadFull(c, b[:]); err != nil || b != [4]byte{5, 2, 1, 1} {
				t.Errorf("replies % x, %v; want 05 02 01 01", b, err)
			}
		})
	}
	t.Run("no-auth accepted without a token", func(t *testing.T) {
		up := startUpstreams(t)
		cfg := testConfig()
		cfg.Token, cfg.NoAuth = "", true
		e := startProxy(t, cfg)
		c := e.dial()
		p, _ := strconv.Atoi(port(up.http))
		_, _ = c.Write(append([]byte{5, 1, 0}, socksRequest(1, "allowed.test", uint16(p), 3)...))
		var b [12]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 5 || b[1] != 0 || b[3] != 0 {
			t.Errorf("replies % x, %v", b, err)
		}
	})
}

func TestSOCKSHandshakeParse(t *testing.T) {
	check := func(u, p string) bool { return u == "cordon" && p == "tok" }
	auth := append([]byte{5, 1, 2}, userPass("cordon", "tok")...)
	for _, tc := range []struct {
		name  string
		in    []byte
		want  string // target, or "" if an error
		reply byte
	}{
		{"domain", append(auth, socksRequest(1, "Example.COM.", 443, 3)...), "example.com:443", 0},
		{"ipv4", append(auth, socksRequest(1, "192.0.2.1", 80, 1)...), "192.0.2.1:80", 0},
		{"ipv6", append(auth, socksRequest(1, "2001:db8::1", 80, 4)...), "[2001:db8::1]:80", 0},
		{"mapped", append(auth, socksRequest(1, "::ffff:192.0.2.1", 80, 4)...), "192.0.2.1:80", 0},
		{"numeric name", append(auth, socksRequest(1, "0x7f.1", 80, 3)...), "", socksHostUnreachable},
		{"empty name", append(auth, socksRequest(1, "", 80, 3)...), "", socksHostUnreachable},
		{"port 0", append(auth, socksRequest(1, "example.com", 0, 3)...), "", socksFailure},
		{"bad version", []byte{4, 1, 0}, "", 0},
		{"no methods", []byte{5, 0}, "", 0},
		{"truncated", auth[:5], "", 0},
		{"bad request version", append(auth, 4, 1, 0, 1, 1, 2, 3, 4, 0, 80), "", socksFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := socksHandshake(bufio.NewReader(bytes.NewReader(tc.in)), io.Discard, false, check)
			if tc.want != "" {
				if err != nil || got.String() != tc.want {
					t.Errorf("got %v, %v; want %s", got, err, tc.want)
				}
				return
			}
			var se *socksError
			if err == nil {
				t.Fatalf("accepted as %v", got)
			}
			if errors.As(err, &se) && se.reply != tc.reply || !errors.As(err, &se) && tc.reply != 0 {
				t.Errorf("error %v, want reply %d", err, tc.reply)
			}
		})
	}
}
