//go:build !unix

package plugins

import (
	"context"

	"github.com/tetratelabs/wazero/experimental"
)

// memPool gives Go-slice memories on this platform.
type memPool struct{}

func newMemPool(int) *memPool { return &memPool{} }

func (mp *memPool) with(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(capacity, max uint64) experimental.LinearMemory {
		return &sliceMemory{buf: make([]byte, 0, capacity), max: max}
	}))
}

func (mp *memPool) close() {}
