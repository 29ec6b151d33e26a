//go:build unix

package plugins

import (
	"context"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// withMemoryAllocator makes instances started with ctx back their linear memory with an
// anonymous mapping of the memory limit's size: growing never copies, and only the pages the
// guest touches use memory. Without it, wazero grows memory by reallocating and copying, which
// makes a Go guest that allocates steadily take quadratic time.
func withMemoryAllocator(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(allocate))
}

func allocate(capacity, max uint64) experimental.LinearMemory {
	if max > 0 && max <= maxMemoryLimit {
		b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err == nil {
			return &mappedMemory{buf: b}
		}
	}
	return &sliceMemory{buf: make([]byte, 0, capacity)}
}

// mappedMemory is a linear memory in a fixed mapping; Reallocate only changes its length.
type mappedMemory struct{ buf []byte }

func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size]
}

func (m *mappedMemory) Free() {
	if m.buf != nil {
		_ = syscall.Munmap(m.buf)
		m.buf = nil
	}
}

// sliceMemory is the fallback when the mapping fails: a Go slice grown by copying.
type sliceMemory struct{ buf []byte }

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
	} else {
		nb := make([]byte, size, max(size, 2*uint64(cap(m.buf))))
		copy(nb, m.buf)
		m.buf = nb
	}
	return m.buf
}

func (m *sliceMemory) Free() { m.buf = nil }
