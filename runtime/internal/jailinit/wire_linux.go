package jailinit

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cordonsh/cordon/fsjail"
	"github.com/cordonsh/cordon/runtime/internal/seccomp"
)

// The configuration goes from the supervisor to the helper in a small binary form written out
// by hand: decoding JSON by reflection took the helper about 3 ms, on the path of every run.
// The form is private to one binary (both ends are the same executable), so it carries no
// version. A test fills every field through reflection and checks the round trip, so a field
// added to Config without being added here fails it.

// ErrWire is wrapped by every decoding error.
var ErrWire = errors.New("malformed helper configuration")

// maxWire bounds the configuration; a larger one is refused, not read.
const maxWire = 16 << 20

// Marshal encodes the configuration.
func (c *Config) Marshal() []byte {
	var w wireWriter
	w.bool(c.Namespace)
	w.strings(c.Args)
	w.strings(c.Env)
	w.string(c.Dir)
	w.uvarint(uint64(c.ProxyPort))
	w.bool(c.Plan != nil)
	if p := c.Plan; p != nil {
		w.uvarint(uint64(len(p.Mounts)))
		for _, m := range p.Mounts {
			w.string(m.Path)
			w.uvarint(uint64(m.Kind))
		}
		w.uvarint(uint64(len(p.Grants)))
		for _, g := range p.Grants {
			w.string(g.Path)
			w.uvarint(uint64(g.Access))
		}
		w.uvarint(uint64(len(p.Holes)))
		for _, h := range p.Holes {
			w.string(h.Path)
			w.uvarint(uint64(h.Deny))
			w.uvarint(uint64(h.AncestorDeny))
			w.bool(h.OnlyAncestors)
		}
		w.strings(p.Placeholders)
	}
	w.string(c.Scratch)
	w.bool(c.Landlock)
	w.bool(c.Net.RestrictConnect)
	w.ports(c.Net.ConnectPorts)
	w.bool(c.Net.RestrictBind)
	w.ports(c.Net.BindPorts)
	w.bool(c.Net.Scope)
	w.bool(c.Seccomp)
	w.bool(c.Filter.AllowUnixSockets)
	w.bool(c.Filter.TCPOnly)
	w.bool(c.Filter.AllowNested)
	w.bool(c.Filter.DenyPtrace)
	w.uvarint(c.NProc)
	w.string(c.CgroupLeave)
	w.bool(c.Setctty)
	w.uvarint(uint64(len(c.Routes)))
	for _, r := range c.Routes {
		w.string(r.Name)
		w.uvarint(uint64(r.Port))
	}
	return w.b
}

// Unmarshal decodes what Marshal wrote. Errors wrap ErrWire.
func (c *Config) Unmarshal(b []byte) error {
	if len(b) > maxWire {
		return fmt.Errorf("%w: %d bytes", ErrWire, len(b))
	}
	r := wireReader{b: b}
	*c = Config{}
	c.Namespace = r.bool()
	c.Args = r.strings()
	c.Env = r.strings()
	c.Dir = r.string()
	c.ProxyPort = int(r.uint(1 << 16))
	if r.bool() {
		p := &fsjail.Plan{}
		for i, n := 0, r.count(); i < n; i++ {
			p.Mounts = append(p.Mounts, fsjail.Mount{Path: r.string(), Kind: fsjail.MountKind(r.uint(255))})
		}
		for i, n := 0, r.count(); i < n; i++ {
			p.Grants = append(p.Grants, fsjail.Grant{Path: r.string(), Access: fsjail.Access(r.uint(255))})
		}
		for i, n := 0, r.count(); i < n; i++ {
			p.Holes = append(p.Holes, fsjail.Hole{Path: r.string(), Deny: fsjail.Access(r.uint(255)),
				AncestorDeny: fsjail.Access(r.uint(255)), OnlyAncestors: r.bool()})
		}
		p.Placeholders = r.strings()
		c.Plan = p
	}
	c.Scratch = r.string()
	c.Landlock = r.bool()
	c.Net = fsjail.NetRules{RestrictConnect: r.bool(), ConnectPorts: r.ports(), RestrictBind: r.bool(), BindPorts: r.ports(), Scope: r.bool()}
	c.Seccomp = r.bool()
	c.Filter = seccomp.Policy{AllowUnixSockets: r.bool(), TCPOnly: r.bool(), AllowNested: r.bool(), DenyPtrace: r.bool()}
	c.NProc = r.uint(1 << 62)
	c.CgroupLeave = r.string()
	c.Setctty = r.bool()
	for i, n := 0, r.count(); i < n; i++ {
		c.Routes = append(c.Routes, RouteListener{Name: r.string(), Port: int(r.uint(1 << 16))})
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%w: %d bytes left over", ErrWire, len(r.b))
	}
	return r.err
}

type wireWriter struct{ b []byte }

func (w *wireWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }

func (w *wireWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *wireWriter) string(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *wireWriter) strings(ss []string) {
	w.uvarint(uint64(len(ss)))
	for _, s := range ss {
		w.string(s)
	}
}

func (w *wireWriter) ports(ps []uint16) {
	w.uvarint(uint64(len(ps)))
	for _, p := range ps {
		w.uvarint(uint64(p))
	}
}

// wireReader reads what wireWriter wrote; after the first error every read returns a zero
// value and err keeps that error.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", ErrWire, what)
	}
	r.b = nil
}

func (r *wireReader) uint(max uint64) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > max {
		r.fail("number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a list length; each element takes at least one byte, which bounds it.
func (r *wireReader) count() int { return int(r.uint(uint64(len(r.b)))) }

func (r *wireReader) bool() bool {
	if len(r.b) == 0 || r.b[0] > 1 {
		r.fail("flag")
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

func (r *wireReader) string() string {
	n := r.uint(maxWire)
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail("string length")
	}
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *wireReader) strings() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.string())
	}
	return out
}

func (r *wireReader) ports() []uint16 {
	n := r.count()
	if n == 0 {
		return nil
	}
	out := make([]uint16, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, uint16(r.uint(1<<16-1)))
	}
	return out
}
