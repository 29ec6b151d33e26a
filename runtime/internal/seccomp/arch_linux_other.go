//go:build linux && !amd64 && !arm64

package seccomp

// The filter is written for amd64 and arm64 only; elsewhere Build returns ErrUnsupported.
const (
	auditArch = 0
	x32Bit    = 0
)

var archDenied []uintptr
