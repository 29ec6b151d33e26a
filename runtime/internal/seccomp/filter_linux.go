package seccomp

import (
	"errors"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned for an architecture the filter is not written for.
var ErrUnsupported = errors.New("seccomp: architecture not supported")

// Policy says what the filter allows beyond its fixed rules. The zero Policy is the
// strictest.
type Policy struct {
	// AllowUnixSockets lets socket(2) create AF_UNIX sockets. socketpair(2) is always allowed.
	// Defaults to false.
	AllowUnixSockets bool
	// TCPOnly limits AF_INET and AF_INET6 sockets to plain TCP: UDP, ICMP, raw, SCTP and MPTCP
	// sockets are refused. Used where Landlock's TCP rules, not a network namespace, are the
	// network boundary. Defaults to false (MPTCP is refused either way).
	TCPOnly bool
	// AllowNested lets the command create user namespaces (clone, clone3, unshare with
	// CLONE_NEWUSER), enter namespaces and mount inside its own. Defaults to false.
	AllowNested bool
	// DenyPtrace refuses ptrace(2) and process_vm_readv/writev(2) altogether. Set it when
	// Landlock, which otherwise confines ptrace to the sandbox's own processes, is missing.
	// Defaults to false.
	DenyPtrace bool
}

// Actions.
const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
)

func retErrno(e unix.Errno) uint32 {
	return unix.SECCOMP_RET_ERRNO | (uint32(e) & unix.SECCOMP_RET_DATA)
}

// deniedAlways lists system calls refused with EPERM whatever the policy: the kernel's
// keyrings (not namespaced: they can hold the user's secrets), BPF and perf (large kernel
// attack surface), userfaultfd (a staple of kernel exploits), module and kexec loading,
// open_by_handle_at (opens files by handle, bypassing every path check), and calls that only
// an administrator needs.
var deniedAlways = append([]uintptr{
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_OPEN_BY_HANDLE_AT,
	unix.SYS_ACCT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_REBOOT, unix.SYS_SYSLOG,
	unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD, unix.SYS_VHANGUP, unix.SYS_LOOKUP_DCOOKIE,
	unix.SYS_FANOTIFY_INIT, unix.SYS_CHROOT, unix.SYS_PIVOT_ROOT,
}, archDenied...)

// deniedUnlessNested lists the mount API and setns, refused unless Policy.AllowNested.
var deniedUnlessNested = []uintptr{
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_MOUNT_SETATTR, unix.SYS_SETNS,
}

// deniedENOSYS lists system calls that report "not implemented", so that programs fall back:
// io_uring (its operations bypass seccomp's view of system calls).
var deniedENOSYS = []uintptr{unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER}

// Build returns the filter program for the running architecture.
func Build(p Policy) ([]unix.SockFilter, error) {
	if auditArch == 0 {
		return nil, ErrUnsupported
	}
	a := newAsm()
	kill := a.newLabel()
	// The architecture first: a system call number means nothing without it (on x86_64 the
	// same binary can make i386 system calls through int 0x80, with other numbers).
	a.load(offArch)
	a.jumpIfNot(unix.BPF_JEQ, auditArch, kill)
	a.load(offNr)
	if x32Bit != 0 {
		// x32 system calls share AUDIT_ARCH_X86_64 and set this bit in the number.
		a.emit(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, 0, 1, x32Bit)
		a.ret(retErrno(unix.ENOSYS))
	}

	deny := func(nrs []uintptr, ret uint32) {
		for _, nr := range nrs {
			a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 0, 1, uint32(nr))
			a.ret(ret)
		}
	}
	deny(deniedAlways, retErrno(unix.EPERM))
	deny(deniedENOSYS, retErrno(unix.ENOSYS))
	if !p.AllowNested {
		deny(deniedUnlessNested, retErrno(unix.EPERM))
		// clone3 passes its flags in memory, out of a filter's reach; ENOSYS makes libc and
		// Go fall back to clone, whose flags the filter can check.
		deny([]uintptr{unix.SYS_CLONE3}, retErrno(unix.ENOSYS))
	}
	if p.DenyPtrace {
		deny([]uintptr{unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV}, retErrno(unix.EPERM))
	}

	// System calls whose arguments decide.
	sock, ioctl, clone, unshare := a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel()
	a.jumpIf(unix.BPF_JEQ, uint32(unix.SYS_SOCKET), sock)
	a.jumpIf(unix.BPF_JEQ, uint32(unix.SYS_IOCTL), ioctl)
	if !p.AllowNested {
		a.jumpIf(unix.BPF_JEQ, uint32(unix.SYS_CLONE), clone)
		a.jumpIf(unix.BPF_JEQ, uint32(unix.SYS_UNSHARE), unshare)
	}
	a.ret(retAllow)

	a.place(kill)
	a.ret(retKill)

	// socket(domain, type, protocol). The arguments are ints: only their low 32 bits count.
	a.place(sock)
	inet, netlink := a.newLabel(), a.newLabel()
	a.load(offArgLo(0))
	a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 0, 1, unix.AF_UNIX)
	if p.AllowUnixSockets {
		a.ret(retAllow)
	} else {
		a.ret(retErrno(unix.EPERM))
	}
	a.jumpIf(unix.BPF_JEQ, unix.AF_INET, inet)
	a.jumpIf(unix.BPF_JEQ, unix.AF_INET6, inet)
	a.jumpIf(unix.BPF_JEQ, unix.AF_NETLINK, netlink)
	// Every other family (packet, vsock, which crosses network namespaces, bluetooth, ...).
	a.ret(retErrno(unix.EAFNOSUPPORT))

	a.place(inet)
	a.load(offArgLo(2))
	// MPTCP is refused everywhere: Landlock's TCP rules do not apply to it. EPROTONOSUPPORT
	// is what a kernel without MPTCP says, so Go and others fall back to TCP.
	a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 0, 1, unix.IPPROTO_MPTCP)
	a.ret(retErrno(unix.EPROTONOSUPPORT))
	if p.TCPOnly {
		a.load(offArgLo(1))
		a.and(0xf) // SOCK_TYPE_MASK: drop SOCK_NONBLOCK and SOCK_CLOEXEC
		a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 1, 0, unix.SOCK_STREAM)
		a.ret(retErrno(unix.EPERM))
		a.load(offArgLo(2))
		a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 0, 1, 0)
		a.ret(retAllow)
		a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 0, 1, unix.IPPROTO_TCP)
		a.ret(retAllow)
		a.ret(retErrno(unix.EPERM)) // SCTP and the like: not covered by Landlock
	} else {
		a.ret(retAllow)
	}

	a.place(netlink)
	// Routing sockets only (getaddrinfo and getifaddrs use them); sock_diag, audit, uevent
	// and the rest are refused.
	a.load(offArgLo(2))
	a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 0, 1, unix.NETLINK_ROUTE)
	a.ret(retAllow)
	a.ret(retErrno(unix.EPROTONOSUPPORT))

	// ioctl(fd, request, ...): the kernel truncates request to 32 bits, so compare only the
	// low word; comparing all 64 bits let TIOCSTI with high bits set through (CVE-2019-10063).
	a.place(ioctl)
	a.load(offArgLo(1))
	a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 0, 1, unix.TIOCSTI)
	a.ret(retErrno(unix.EPERM))
	a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 0, 1, unix.TIOCLINUX)
	a.ret(retErrno(unix.EPERM))
	a.ret(retAllow)

	if !p.AllowNested {
		// clone(flags, ...) and unshare(flags): CLONE_NEWUSER lies in the low word on every
		// supported architecture.
		a.place(clone)
		a.place(unshare)
		a.load(offArgLo(0))
		a.emit(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, 0, 1, unix.CLONE_NEWUSER)
		a.ret(retErrno(unix.EPERM))
		a.ret(retAllow)
	}
	return a.assemble()
}
