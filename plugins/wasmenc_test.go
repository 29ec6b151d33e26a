package plugins

// A minimal WebAssembly binary encoder, so that tests can make small modules that break the
// ABI in exact ways (a trap, a wrong version, a pointer outside memory) without a toolchain.
// Every value type is i32.

import "encoding/binary"

type wmod struct {
	types    [][2]int // params, results
	imports  []wimport
	funcs    []wfunc
	memMin   uint32
	memMax   uint32
	hasMax   bool
	noMemory bool
	exports  []wexport
	data     []wdata
}

type wimport struct {
	mod, name string
	typ       int
}

type wfunc struct {
	typ    int
	locals int
	body   []byte
}

type wexport struct {
	name string
	kind byte // 0 func, 2 memory
	idx  uint32
}

type wdata struct {
	off uint32
	b   []byte
}

func newWmod() *wmod { return &wmod{memMin: 1} }

func (m *wmod) typ(params, results int) int {
	for i, t := range m.types {
		if t == [2]int{params, results} {
			return i
		}
	}
	m.types = append(m.types, [2]int{params, results})
	return len(m.types) - 1
}

// importFunc adds an imported function and returns its index. Imports must be added before
// functions.
func (m *wmod) importFunc(mod, name string, params, results int) uint32 {
	m.imports = append(m.imports, wimport{mod, name, m.typ(params, results)})
	return uint32(len(m.imports) - 1)
}

// fn adds a function with the given body (without the final "end") and returns its index.
func (m *wmod) fn(params, results int, body ...[]byte) uint32 {
	var b []byte
	for _, p := range body {
		b = append(b, p...)
	}
	m.funcs = append(m.funcs, wfunc{typ: m.typ(params, results), body: b})
	return uint32(len(m.imports) + len(m.funcs) - 1)
}

func (m *wmod) export(name string, idx uint32) { m.exports = append(m.exports, wexport{name, 0, idx}) }

func (m *wmod) bytes() []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	section := func(id byte, content []byte) {
		out = append(out, id)
		out = uleb(out, uint64(len(content)))
		out = append(out, content...)
	}
	var s []byte
	s = uleb(s, uint64(len(m.types)))
	for _, t := range m.types {
		s = append(s, 0x60)
		s = uleb(s, uint64(t[0]))
		for i := 0; i < t[0]; i++ {
			s = append(s, 0x7f)
		}
		s = uleb(s, uint64(t[1]))
		for i := 0; i < t[1]; i++ {
			s = append(s, 0x7f)
		}
	}
	section(1, s)
	if len(m.imports) > 0 {
		s = uleb(nil, uint64(len(m.imports)))
		for _, im := range m.imports {
			s = name(s, im.mod)
			s = name(s, im.name)
			s = append(s, 0)
			s = uleb(s, uint64(im.typ))
		}
		section(2, s)
	}
	s = uleb(nil, uint64(len(m.funcs)))
	for _, f := range m.funcs {
		s = uleb(s, uint64(f.typ))
	}
	section(3, s)
	if !m.noMemory {
		s = []byte{1}
		if m.hasMax {
			s = append(s, 1)
			s = uleb(s, uint64(m.memMin))
			s = uleb(s, uint64(m.memMax))
		} else {
			s = append(s, 0)
			s = uleb(s, uint64(m.memMin))
		}
		section(5, s)
	}
	exports := m.exports
	if !m.noMemory {
		exports = append([]wexport{{"memory", 2, 0}}, exports...)
	}
	s = uleb(nil, uint64(len(exports)))
	for _, e := range exports {
		s = name(s, e.name)
		s = append(s, e.kind)
		s = uleb(s, uint64(e.idx))
	}
	section(7, s)
	s = uleb(nil, uint64(len(m.funcs)))
	for _, f := range m.funcs {
		var body []byte
		if f.locals > 0 {
			body = append(body, 1)
			body = uleb(body, uint64(f.locals))
			body = append(body, 0x7f)
		} else {
			body = append(body, 0)
		}
		body = append(body, f.body...)
		body = append(body, 0x0b)
		s = uleb(s, uint64(len(body)))
		s = append(s, body...)
	}
	section(10, s)
	if len(m.data) > 0 {
		s = uleb(nil, uint64(len(m.data)))
		for _, d := range m.data {
			s = append(s, 0)
			s = append(s, i32c(int32(d.off))...)
			s = append(s, 0x0b)
			s = uleb(s, uint64(len(d.b)))
			s = append(s, d.b...)
		}
		section(11, s)
	}
	return out
}

func uleb(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func name(b []byte, s string) []byte { return append(uleb(b, uint64(len(s))), s...) }

// Instructions.

func i32c(v int32) []byte {
	b := []byte{0x41}
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func wcall(idx uint32) []byte { return uleb([]byte{0x10}, uint64(idx)) }

var (
	opUnreachable = []byte{0x00}
	opDrop        = []byte{0x1a}
	opLoop        = []byte{0x03, 0x40}
	opEnd         = []byte{0x0b}
	opBr0         = []byte{0x0c, 0x00}
	opBrIf0       = []byte{0x0d, 0x00}
	opMemGrow     = []byte{0x40, 0x00}
	opI32Ne       = []byte{0x47}
)

// abiModule returns a module that declares ABI version 1 and exports cordon_on_request with
// the given body (which must leave an i32 on the stack). hostImports are imported from
// "cordon" with their ABI signatures, in order, before the body is built: body receives
// their indexes.
func abiModule(hostImports []string, body func(idx map[string]uint32) [][]byte) *wmod {
	m := newWmod()
	idx := map[string]uint32{}
	for _, n := range hostImports {
		for _, f := range hostFuncs {
			if f.name == n {
				idx[n] = m.importFunc(hostModule, n, f.params, f.results)
			}
		}
	}
	m.export("cordon_abi_version_1", m.fn(0, 0))
	m.export("cordon_on_request", m.fn(0, 1, body(idx)...))
	return m
}

// strAt places s in a data segment at off and returns (off, len) as i32.const instructions.
func (m *wmod) strAt(off uint32, s string) []byte {
	m.data = append(m.data, wdata{off, []byte(s)})
	return append(i32c(int32(off)), i32c(int32(len(s)))...)
}
