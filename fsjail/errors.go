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
	// ErrBadPath: a path cannot be written into a macOS sandbox profile (not absolute, not
	// clean, or holding a NUL byte), or a pattern uses what a profile cannot express.
	ErrBadPath = errors.New("path cannot be expressed in a sandbox profile")
)
