//go:build !unix

package plugins

import "context"

// withMemoryAllocator leaves wazero's default allocator in place on this platform.
func withMemoryAllocator(ctx context.Context) context.Context { return ctx }
