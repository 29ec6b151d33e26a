package netjail

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// CloneFlags are the namespaces of a sandbox: user (so that an unprivileged caller may
// create the others), network (only loopback), mount (masks and read-only binds), PID (the
// command's processes cannot see or outlive the sandbox) and IPC (System V shared memory
// and message queues of the host are out of reach).
const CloneFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC

// SysProcAttr returns the attributes that start a process in a sandbox's new namespaces,
// with the caller's uid and gid mapped to themselves (the command sees its own ids and owns
// its own files), setgroups denied, and the process killed if the calling thread dies.
func SysProcAttr(uid, gid int) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:  CloneFlags,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		// Denying setgroups is what lets an unprivileged user write gid_map; it also keeps
		// the command from dropping a supplementary group that a deny rule relies on.
		GidMappingsEnableSetgroups: false,
		// An unprivileged caller keeps its own uid inside, and exec would clear the
		// capabilities the namespace's creator has: the helper keeps, as ambient
		// capabilities, the ones it needs to set the sandbox up. It drops them all before
		// the command starts.
		AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN, unix.CAP_SETPCAP},
		Pdeathsig:   syscall.SIGKILL,
		Setsid:      true,
	}
}

// Refused reports whether err, from starting a process with SysProcAttr or from setting up
// its namespaces, means that this machine does not let the caller use user namespaces
// (disabled by sysctl, an AppArmor rule, a container's seccomp profile, or a limit), as
// opposed to a failure of cordon itself.
func Refused(err error) bool {
	for _, e := range []error{unix.EPERM, unix.EACCES, unix.EINVAL, unix.ENOSPC, unix.EUSERS, unix.ENOSYS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// LoopbackUp brings the loopback interface up in the calling process's network namespace.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: set flags: %w", err)
	}
	return nil
}

// ListenLoopback creates a TCP listener on 127.0.0.1:port (0 picks a free port) and returns
// its descriptor (close-on-exec). It takes no address type from package net, so that the
// init helper, which calls it, does not depend on that package.
func ListenLoopback(port uint16) (int, error) {
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("listen %s: socket: %w", addr, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(port), Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: bind: %w", addr, err)
	}
	if err := unix.Listen(fd, 1024); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	return fd, nil
}

// SendFD sends fd, with a message, over the unix socket sock.
func SendFD(sock int, msg []byte, fd int) error {
	if err := unix.Sendmsg(sock, msg, unix.UnixRights(fd), nil, 0); err != nil {
		return fmt.Errorf("send descriptor: %w", err)
	}
	return nil
}

// ReadMsg reads one message from a SOCK_SEQPACKET unix socket, with the descriptors that
// came with it (close-on-exec). buf must hold the largest message.
func ReadMsg(sock int, buf []byte) (n int, fds []int, err error) {
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return 0, nil, err
	}
	fds, err = ParseRights(oob[:oobn])
	if err != nil {
		return 0, nil, err
	}
	return n, fds, nil
}

// ParseRights returns the descriptors passed in a message's control data (SCM_RIGHTS).
func ParseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err == nil {
			fds = append(fds, got...)
		}
	}
	return fds, nil
}
