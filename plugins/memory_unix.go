//go:build unix

package plugins

import (
	"context"
	"sync"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// memPool backs the linear memories of a plugin's instances with anonymous mappings of the
// memory limit's size. Growing never copies (wazero's default grows by reallocating, which
// makes a Go guest that allocates steadily take quadratic time), only the pages a guest
// touches use memory, and the mapping of a closed instance is zeroed and kept for the next
// one, which then starts without page faults.
//
// wazero frees an instance's memory only when no guest code runs in it: after the call that
// closed it returns, or when the runtime is closed, which Plugin.close does only once no call
// is in flight.
type memPool struct {
	mu     sync.Mutex
	free   [][]byte
	keep   int
	closed bool
}

func newMemPool(keep int) *memPool { return &memPool{keep: keep} }

// with makes instances started with ctx use the pool.
func (mp *memPool) with(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(mp.allocate))
}

func (mp *memPool) allocate(capacity, max uint64) experimental.LinearMemory {
	if max == 0 || max > maxMemoryLimit {
		return &sliceMemory{buf: make([]byte, 0, capacity), max: max}
	}
	mp.mu.Lock()
	for i := len(mp.free) - 1; i >= 0; i-- {
		if b := mp.free[i]; uint64(len(b)) == max {
			mp.free = append(mp.free[:i], mp.free[i+1:]...)
			mp.mu.Unlock()
			return &mappedMemory{buf: b, pool: mp}
		}
	}
	mp.mu.Unlock()
	b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return &sliceMemory{buf: make([]byte, 0, capacity), max: max}
	}
	return &mappedMemory{buf: b, pool: mp}
}

// put takes back a mapping whose first used bytes were in use.
func (mp *memPool) put(b []byte, used uint64) {
	clear(b[:used])
	mp.mu.Lock()
	if !mp.closed && len(mp.free) < mp.keep {
		mp.free = append(mp.free, b)
		b = nil
	}
	mp.mu.Unlock()
	if b != nil {
		_ = syscall.Munmap(b)
	}
}

// close unmaps the kept mappings; memories freed later are unmapped at once.
func (mp *memPool) close() {
	mp.mu.Lock()
	free := mp.free
	mp.free, mp.closed = nil, true
	mp.mu.Unlock()
	for _, b := range free {
		_ = syscall.Munmap(b)
	}
}

// mappedMemory is a linear memory in a fixed mapping; Reallocate only changes its length.
type mappedMemory struct {
	buf  []byte
	used uint64 // the largest length handed out
	pool *memPool
}

func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	m.used = max(m.used, size)
	return m.buf[:size]
}

func (m *mappedMemory) Free() {
	if m.buf != nil {
		m.pool.put(m.buf, m.used)
		m.buf = nil
	}
}
