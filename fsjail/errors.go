package fsjail

import "errors"

var (
	// ErrUnsupported: this platform cannot apply a Plan.
	ErrUnsupported = errors.New("fsjail: not supported on this platform")
	// ErrGlobTooBroad: a pattern examined more directory entries than Config.MaxGlobEntries.
	ErrGlobTooBroad = errors.New("pattern examines too many files")
	// ErrBadPattern: a pattern is malformed.
	ErrBadPattern = errors.New("bad pattern")
	// ErrNoLandlock: the kernel has no Landlock.
	ErrNoLandlock = errors.New("landlock is not available")
)
