package fsjail

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MountOptions are the mounts the runtime adds to a plan's own.
type MountOptions struct {
	// Scratch is an empty directory on which a tmpfs may be mounted for a moment, to hold
	// the sources of the masks (cordon uses the private temp dir). Required if the plan has
	// masks.
	Scratch string
	// Proc mounts a fresh /proc for the helper's PID namespace, so that the command sees its
	// own processes only.
	Proc bool
	// Shm mounts a private, empty tmpfs on /dev/shm, so that the command cannot reach the
	// POSIX shared memory of processes outside.
	Shm bool
}

// Mount applies the plan's mounts in the calling process's mount namespace. It runs in the
// init helper, in a new mount namespace owned by the helper's user namespace, before
// Landlock. Nothing it mounts propagates to the host.
func (p *Plan) Mount(opts MountOptions) error {
	// Mounts copied into a namespace of a less privileged user namespace are already slaves;
	// say it anyway, so that no mount event from here can reach the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return &os.PathError{Op: "make mounts private", Path: "/", Err: err}
	}
	var maskDir, maskFile string
	for _, m := range p.Mounts {
		if m.Kind == MaskDir || m.Kind == MaskFile {
			var err error
			if maskDir, maskFile, err = makeMaskSources(opts.Scratch); err != nil {
				return err
			}
			break
		}
	}
	for _, m := range p.Mounts {
		var err error
		switch m.Kind {
		case Pin:
			err = bind(m.Path, m.Path, unix.MS_REC)
		case ReadOnly:
			// Not recursive: whatever is mounted beneath a write-denied path stays out of
			// view rather than writable.
			if err = bind(m.Path, m.Path, 0); err == nil {
				err = remountReadOnly(m.Path)
			}
		case MaskDir:
			if err = bind(maskDir, m.Path, 0); err == nil {
				err = remountReadOnly(m.Path)
			}
		case MaskFile:
			if err = bind(maskFile, m.Path, 0); err == nil {
				err = remountReadOnly(m.Path)
			}
		default:
			err = fmt.Errorf("unknown mount kind %d", m.Kind)
		}
		if err != nil {
			return err
		}
	}
	if maskDir != "" {
		// The masks keep the tmpfs alive; detaching it from the scratch directory leaves the
		// command no path to the mask sources.
		if err := unix.Unmount(opts.Scratch, unix.MNT_DETACH); err != nil {
			return &os.PathError{Op: "unmount mask sources", Path: opts.Scratch, Err: err}
		}
	}
	if opts.Proc {
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return &os.PathError{Op: "mount proc", Path: "/proc", Err: err}
		}
	}
	if opts.Shm {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
				return &os.PathError{Op: "mount tmpfs", Path: "/dev/shm", Err: err}
			}
		}
	}
	return nil
}

// makeMaskSources mounts a tmpfs on scratch with an empty directory and an empty file, both
// mode 0000: the command has no capability to override their permissions.
func makeMaskSources(scratch string) (dir, file string, err error) {
	if scratch == "" {
		return "", "", fmt.Errorf("mask sources: no scratch directory")
	}
	if err := unix.Mount("tmpfs", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=16k,mode=0700"); err != nil {
		return "", "", &os.PathError{Op: "mount tmpfs", Path: scratch, Err: err}
	}
	dir, file = filepath.Join(scratch, "d"), filepath.Join(scratch, "f")
	if err := unix.Mkdir(dir, 0); err != nil {
		return "", "", &os.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	fd, err := unix.Open(file, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", "", &os.PathError{Op: "create", Path: file, Err: err}
	}
	unix.Close(fd)
	// The umask may have left bits; the masks must have none.
	if err := unix.Chmod(dir, 0); err != nil {
		return "", "", &os.PathError{Op: "chmod", Path: dir, Err: err}
	}
	if err := unix.Chmod(file, 0); err != nil {
		return "", "", &os.PathError{Op: "chmod", Path: file, Err: err}
	}
	return dir, file, nil
}

func bind(src, dst string, flags uintptr) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|flags, ""); err != nil {
		return &os.PathError{Op: "bind mount", Path: dst, Err: err}
	}
	return nil
}

// remountReadOnly makes a bind mount read-only. In a user namespace a remount must keep the
// flags the mount was locked with (nosuid, nodev, noexec, atime), so they are read first.
func remountReadOnly(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	if err := unix.Mount("", path, "", flags, ""); err != nil {
		return &os.PathError{Op: "remount read-only", Path: path, Err: err}
	}
	return nil
}
