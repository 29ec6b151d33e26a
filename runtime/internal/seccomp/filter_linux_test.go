package seccomp

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// call is one system call as the filter sees it.
type call struct {
	arch uint32
	nr   uint32
	args [6]uint64
}

func (c call) data() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], c.nr)
	binary.LittleEndian.PutUint32(b[4:], c.arch)
	for i, a := range c.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// run interprets a classic BPF program over seccomp_data, the way the kernel would, and
// fails on anything the kernel's checker would reject (out-of-range loads or jumps,
// unknown instructions, falling off the end).
func run(prog []unix.SockFilter, data []byte) (uint32, error) {
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || int(in.K)+4 > len(data) {
				return 0, fmt.Errorf("pc %d: bad load offset %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			var ok bool
			switch in.Code & 0xf0 {
			case unix.BPF_JEQ:
				ok = acc == in.K
			case unix.BPF_JGE:
				ok = acc >= in.K
			case unix.BPF_JGT:
				ok = acc > in.K
			case unix.BPF_JSET:
				ok = acc&in.K != 0
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K, nil
		default:
			return 0, fmt.Errorf("pc %d: unknown instruction %#x", pc, in.Code)
		}
		if pc+1 > len(prog) {
			return 0, fmt.Errorf("pc %d: jump past the end", pc)
		}
	}
	return 0, fmt.Errorf("fell off the end of the program")
}

func errno(e unix.Errno) uint32 { return retErrno(e) }

func TestFilter(t *testing.T) {
	const (
		sockStream = unix.SOCK_STREAM
		sockDgram  = unix.SOCK_DGRAM
	)
	sys := func(nr uintptr, args ...uint64) call {
		c := call{arch: auditArch, nr: uint32(nr)}
		copy(c.args[:], args)
		return c
	}
	tests := []struct {
		name   string
		policy Policy
		call   call
		want   uint32
	}{
		{"read allowed", Policy{}, sys(unix.SYS_READ, 0), retAllow},
		{"foreign arch killed", Policy{}, call{arch: 0x40000003, nr: unix.SYS_READ}, retKill},
		{"keyctl", Policy{}, sys(unix.SYS_KEYCTL), errno(unix.EPERM)},
		{"bpf", Policy{}, sys(unix.SYS_BPF), errno(unix.EPERM)},
		{"open_by_handle_at", Policy{}, sys(unix.SYS_OPEN_BY_HANDLE_AT), errno(unix.EPERM)},
		{"io_uring_setup", Policy{}, sys(unix.SYS_IO_URING_SETUP), errno(unix.ENOSYS)},
		{"mount", Policy{}, sys(unix.SYS_MOUNT), errno(unix.EPERM)},
		{"mount nested", Policy{AllowNested: true}, sys(unix.SYS_MOUNT), retAllow},
		{"clone3", Policy{}, sys(unix.SYS_CLONE3), errno(unix.ENOSYS)},
		{"clone3 nested", Policy{AllowNested: true}, sys(unix.SYS_CLONE3), retAllow},
		{"clone thread", Policy{}, sys(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_THREAD|unix.CLONE_SIGHAND), retAllow},
		{"clone newuser", Policy{}, sys(unix.SYS_CLONE, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), errno(unix.EPERM)},
		{"clone newuser nested", Policy{AllowNested: true}, sys(unix.SYS_CLONE, unix.CLONE_NEWUSER), retAllow},
		{"unshare newuser", Policy{}, sys(unix.SYS_UNSHARE, unix.CLONE_NEWUSER), errno(unix.EPERM)},
		{"unshare newns", Policy{}, sys(unix.SYS_UNSHARE, unix.CLONE_NEWNS), retAllow},
		{"ptrace allowed", Policy{}, sys(unix.SYS_PTRACE), retAllow},
		{"ptrace denied", Policy{DenyPtrace: true}, sys(unix.SYS_PTRACE), errno(unix.EPERM)},
		{"tiocsti", Policy{}, sys(unix.SYS_IOCTL, 0, unix.TIOCSTI), errno(unix.EPERM)},
		{"tiocsti high bits", Policy{}, sys(unix.SYS_IOCTL, 0, 1<<32|unix.TIOCSTI), errno(unix.EPERM)},
		{"tioclinux", Policy{}, sys(unix.SYS_IOCTL, 0, unix.TIOCLINUX), errno(unix.EPERM)},
		{"tcgets", Policy{}, sys(unix.SYS_IOCTL, 0, unix.TCGETS), retAllow},
		{"unix socket", Policy{}, sys(unix.SYS_SOCKET, unix.AF_UNIX, sockStream), errno(unix.EPERM)},
		{"unix socket high bits", Policy{}, sys(unix.SYS_SOCKET, 1<<32|unix.AF_UNIX, sockStream), errno(unix.EPERM)},
		{"unix socket allowed", Policy{AllowUnixSockets: true}, sys(unix.SYS_SOCKET, unix.AF_UNIX, sockStream), retAllow},
		{"socketpair", Policy{}, sys(unix.SYS_SOCKETPAIR, unix.AF_UNIX, sockStream), retAllow},
		{"tcp", Policy{}, sys(unix.SYS_SOCKET, unix.AF_INET, sockStream, 0), retAllow},
		{"udp in namespace", Policy{}, sys(unix.SYS_SOCKET, unix.AF_INET, sockDgram, 0), retAllow},
		{"mptcp", Policy{}, sys(unix.SYS_SOCKET, unix.AF_INET, sockStream, unix.IPPROTO_MPTCP), errno(unix.EPROTONOSUPPORT)},
		{"mptcp6", Policy{TCPOnly: true}, sys(unix.SYS_SOCKET, unix.AF_INET6, sockStream, unix.IPPROTO_MPTCP), errno(unix.EPROTONOSUPPORT)},
		{"tcp only: tcp", Policy{TCPOnly: true}, sys(unix.SYS_SOCKET, unix.AF_INET6, sockStream|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP), retAllow},
		{"tcp only: udp", Policy{TCPOnly: true}, sys(unix.SYS_SOCKET, unix.AF_INET, sockDgram, 0), errno(unix.EPERM)},
		{"tcp only: icmp", Policy{TCPOnly: true}, sys(unix.SYS_SOCKET, unix.AF_INET, sockDgram, unix.IPPROTO_ICMP), errno(unix.EPERM)},
		{"tcp only: raw", Policy{TCPOnly: true}, sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW), errno(unix.EPERM)},
		{"tcp only: sctp", Policy{TCPOnly: true}, sys(unix.SYS_SOCKET, unix.AF_INET, sockStream, unix.IPPROTO_SCTP), errno(unix.EPERM)},
		{"packet", Policy{}, sys(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_RAW), errno(unix.EAFNOSUPPORT)},
		{"vsock", Policy{}, sys(unix.SYS_SOCKET, unix.AF_VSOCK, sockStream), errno(unix.EAFNOSUPPORT)},
		{"netlink route", Policy{TCPOnly: true}, sys(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE), retAllow},
		{"netlink sock_diag", Policy{}, sys(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_SOCK_DIAG), errno(unix.EPROTONOSUPPORT)},
	}
	if x32Bit != 0 {
		tests = append(tests, struct {
			name   string
			policy Policy
			call   call
			want   uint32
		}{"x32", Policy{}, call{arch: auditArch, nr: x32Bit | unix.SYS_READ}, errno(unix.ENOSYS)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := Build(tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			got, err := run(prog, tt.call.data())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("action %#x, want %#x", got, tt.want)
			}
		})
	}
}

// FuzzFilter checks that every program the builder makes is well formed for every input:
// no out-of-range load or jump, and always one of the actions the package uses.
func FuzzFilter(f *testing.F) {
	f.Add(uint8(0), uint32(auditArch), uint32(unix.SYS_SOCKET), uint64(unix.AF_UNIX), uint64(1), uint64(0))
	f.Add(uint8(15), uint32(auditArch), uint32(unix.SYS_IOCTL), uint64(0), uint64(unix.TIOCSTI), uint64(0))
	f.Fuzz(func(t *testing.T, pol uint8, arch, nr uint32, a0, a1, a2 uint64) {
		p := Policy{AllowUnixSockets: pol&1 != 0, TCPOnly: pol&2 != 0, AllowNested: pol&4 != 0, DenyPtrace: pol&8 != 0}
		prog, err := Build(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := run(prog, call{arch: arch, nr: nr, args: [6]uint64{a0, a1, a2}}.data())
		if err != nil {
			t.Fatal(err)
		}
		if got != retAllow && got != retKill && got&unix.SECCOMP_RET_ACTION_FULL != unix.SECCOMP_RET_ERRNO {
			t.Fatalf("unexpected action %#x", got)
		}
		if arch != auditArch && got != retKill {
			t.Fatalf("foreign arch %#x not killed", arch)
		}
	})
}
