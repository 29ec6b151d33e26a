package plugins

// sliceMemory is a linear memory in a Go slice whose capacity doubles as it grows, so that
// growing costs amortized linear time.
type sliceMemory struct {
	buf []byte
	max uint64
}

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	c := max(size, 2*uint64(cap(m.buf)))
	if m.max > 0 {
		c = min(c, max(size, m.max))
	}
	nb := make([]byte, size, c)
	copy(nb, m.buf)
	m.buf = nb
	return m.buf
}

func (m *sliceMemory) Free() { m.buf = nil }
