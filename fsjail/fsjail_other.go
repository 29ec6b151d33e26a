//go:build !linux

package fsjail

// Prepare fails with ErrUnsupported: the Linux jail exists only on Linux.
func Prepare(cfg Config) (*Plan, error) { return nil, ErrUnsupported }

// Cleanup does nothing.
func (p *Plan) Cleanup() []string { return nil }

// ABI returns 0: there is no Landlock here.
func ABI() int { return 0 }
