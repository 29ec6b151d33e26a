package fsjail

import (
	"path/filepath"
	goruntime "runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// canonicalExisting returns the kernel's own spelling of an existing path, as F_GETPATH
// reports it for a descriptor of the file: symbolic links and firmlinks resolved, names in
// the case they have on disk. The descriptor is opened for event notification only
// (O_EVTONLY), which needs no read permission and has no effect on the file, and without
// blocking (a FIFO). Where that fails the standard library resolves the links.
func canonicalExisting(p string) (string, bool) {
	fd, err := unix.Open(p, unix.O_EVTONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return evalExisting(p)
	}
	defer unix.Close(fd)
	buf := make([]byte, unix.PathMax)
	_, err = unix.FcntlInt(uintptr(fd), unix.F_GETPATH, int(uintptr(unsafe.Pointer(&buf[0]))))
	goruntime.KeepAlive(buf)
	if err != nil {
		return evalExisting(p)
	}
	r := unix.ByteSliceToString(buf)
	if !filepath.IsAbs(r) {
		return evalExisting(p)
	}
	return filepath.Clean(r), true
}
