package runtime_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the escape-attempt tool: run inside the sandbox as
// "<test binary> cordon-attempt NAME ARGS...", it makes one attempt with raw system calls and
// prints an outcome as JSON, so that tests assert the exact errno of every refusal.

const attemptArg = "cordon-attempt"

// outcome is what an attempt reports.
type outcome struct {
	Errno  int    `json:"errno"` // 0: the attempt succeeded
	Err    string `json:"err,omitempty"`
	Detail string `json:"detail,omitempty"` // what it read, counted or received
}

func (o outcome) String() string {
	if o.Errno == 0 && o.Err == "" {
		return fmt.Sprintf("succeeded (%q)", o.Detail)
	}
	return fmt.Sprintf("failed: %s (errno %d) %s", o.Err, o.Errno, o.Detail)
}

func fromErr(err error, detail string) outcome {
	if err == nil {
		return outcome{Detail: detail}
	}
	o := outcome{Err: err.Error(), Detail: detail}
	var e syscall.Errno
	if errors.As(err, &e) {
		o.Errno = int(e)
	} else {
		o.Errno = -1
	}
	return o
}

var attempts = map[string]func(args []string) outcome{
	"read": func(a []string) outcome {
		b, err := os.ReadFile(a[0])
		return fromErr(err, string(b))
	},
	"readdir": func(a []string) outcome {
		es, err := os.ReadDir(a[0])
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return fromErr(err, strings.Join(names, ","))
	},
	"write": func(a []string) outcome {
		return fromErr(os.WriteFile(a[0], []byte("written by the sandbox\n"), 0o644), "")
	},
	"mkdir":  func(a []string) outcome { return fromErr(unix.Mkdir(a[0], 0o755), "") },
	"rename": func(a []string) outcome { return fromErr(unix.Rename(a[0], a[1]), "") },
	"unlink": func(a []string) outcome { return fromErr(unix.Unlink(a[0]), "") },
	"rmdir":  func(a []string) outcome { return fromErr(unix.Rmdir(a[0]), "") },
	"link":   func(a []string) outcome { return fromErr(unix.Link(a[0], a[1]), "") },
	"symlink-read": func(a []string) outcome {
		if err := os.Symlink(a[0], a[1]); err != nil {
			return fromErr(err, "symlink")
		}
		b, err := os.ReadFile(a[1])
		return fromErr(err, string(b))
	},
	"truncate": func(a []string) outcome { return fromErr(unix.Truncate(a[0], 0), "") },
	"chown": func(a []string) outcome {
		uid, _ := strconv.Atoi(a[1])
		return fromErr(unix.Chown(a[0], uid, -1), "")
	},
	"chmod-suid": func(a []string) outcome { return fromErr(unix.Chmod(a[0], 0o4755), "") },
	"exec-euid": func(a []string) outcome {
		// Runs a (setuid) copy of this binary and reports the effective uid it got.
		r, w, _ := os.Pipe()
		pid, err := syscall.ForkExec(a[0], []string{a[0], attemptArg, "euid"}, &syscall.ProcAttr{Files: []uintptr{0, w.Fd(), 2}})
		w.Close()
		if err != nil {
			return fromErr(err, "")
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
		line, _ := bufio.NewReader(r).ReadString('\n')
		var o outcome
		_ = json.Unmarshal([]byte(line), &o)
		return outcome{Detail: o.Detail}
	},
	"euid": func([]string) outcome { return outcome{Detail: strconv.Itoa(os.Geteuid())} },
	"mount": func(a []string) outcome {
		return fromErr(unix.Mount("tmpfs", a[0], "tmpfs", 0, ""), "")
	},
	"umount": func(a []string) outcome { return fromErr(unix.Unmount(a[0], unix.MNT_DETACH), "") },
	"open-by-handle": func(a []string) outcome {
		h, mount, err := unix.NameToHandleAt(unix.AT_FDCWD, a[0], 0)
		if err != nil {
			return fromErr(err, "name_to_handle_at")
		}
		mfd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return fromErr(err, "open /")
		}
		_ = mount
		fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY)
		if err == nil {
			unix.Close(fd)
		}
		return fromErr(err, "")
	},
	"clone-newuser": func([]string) outcome {
		// clone(CLONE_NEWUSER) through a plain fork and exec of true.
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}})
		if err == nil {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, 0, nil)
		}
		return fromErr(err, "")
	},
	"unshare-newuser": func([]string) outcome {
		_, _, e := unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
		return errnoOutcome(e)
	},
	"clone3": func([]string) outcome {
		// A zero size is invalid: a kernel that sees the call says EINVAL; the filter says
		// ENOSYS before the kernel looks.
		_, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		return errnoOutcome(e)
	},
	"io_uring": func([]string) outcome {
		var params [120]byte
		r, _, e := unix.RawSyscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
		if e == 0 {
			unix.Close(int(r))
		}
		return errnoOutcome(e)
	},
	"keyctl": func([]string) outcome {
		_, _, e := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xfffffffd), 0) // KEY_SPEC_SESSION_KEYRING
		return errnoOutcome(e)
	},
	"caps": func([]string) outcome {
		b, err := os.ReadFile("/proc/self/status")
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp:"} {
				if strings.HasPrefix(l, k) {
					keep = append(keep, strings.Join(strings.Fields(l), " "))
				}
			}
		}
		return fromErr(err, strings.Join(keep, ";"))
	},
	"tcp": func(a []string) outcome {
		ap := netip.MustParseAddrPort(a[0])
		fd, err := socketFor(ap, unix.SOCK_STREAM, 0)
		if err != nil {
			return fromErr(err, "socket")
		}
		defer unix.Close(fd)
		return fromErr(unix.Connect(fd, sockaddr(ap)), "")
	},
	"tcp-bind": func(a []string) outcome {
		ap := netip.MustParseAddrPort(a[0])
		fd, err := socketFor(ap, unix.SOCK_STREAM, 0)
		if err != nil {
			return fromErr(err, "socket")
		}
		defer unix.Close(fd)
		return fromErr(unix.Bind(fd, sockaddr(ap)), "")
	},
	"udp": func(a []string) outcome {
		// Send a datagram (a DNS query when the peer is a DNS stand-in) and wait briefly for
		// an answer.
		ap := netip.MustParseAddrPort(a[0])
		fd, err := socketFor(ap, unix.SOCK_DGRAM, 0)
		if err != nil {
			return fromErr(err, "socket")
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, sockaddr(ap)); err != nil {
			return fromErr(err, "connect")
		}
		if _, err := unix.Write(fd, dnsQuery); err != nil {
			return fromErr(err, "send")
		}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 300000})
		buf := make([]byte, 512)
		n, err := unix.Read(fd, buf)
		if n > 0 {
			return outcome{Detail: string(buf[:n])}
		}
		return fromErr(err, "recv")
	},
	"raw": func([]string) outcome {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
		closeIf(fd, err)
		return fromErr(err, "")
	},
	"ping": func([]string) outcome {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP)
		closeIf(fd, err)
		return fromErr(err, "")
	},
	"packet": func([]string) outcome {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		closeIf(fd, err)
		return fromErr(err, "")
	},
	"mptcp": func([]string) outcome {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_MPTCP)
		closeIf(fd, err)
		return fromErr(err, "")
	},
	"unix": func(a []string) outcome {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fromErr(err, "socket")
		}
		defer unix.Close(fd)
		return fromErr(unix.Connect(fd, &unix.SockaddrUnix{Name: a[0]}), "")
	},
	"socketpair": func([]string) outcome {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err == nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
		}
		return fromErr(err, "")
	},
	"ptrace": func(a []string) outcome {
		pid := pidArg(a[0])
		err := unix.PtraceSeize(pid)
		if err == nil {
			_ = unix.PtraceDetach(pid)
		}
		return fromErr(err, "")
	},
	"kill": func(a []string) outcome {
		pid := pidArg(a[0])
		return fromErr(unix.Kill(pid, unix.SIGTERM), "")
	},
	"tiocsti": func(a []string) outcome {
		// TIOCSTI on stdin, the request as is or with high bits set (CVE-2019-10063).
		req := uintptr(unix.TIOCSTI)
		if len(a) > 0 && a[0] == "high" {
			req |= 1 << 32
		}
		c := byte('x')
		_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, req, uintptr(unsafe.Pointer(&c)))
		return errnoOutcome(e)
	},
	"tty": func([]string) outcome {
		// What the command's terminal is: is stdin a terminal, is it the controlling one.
		_, err := unix.IoctlGetTermios(0, unix.TCGETS)
		sid, _ := unix.Getsid(0)
		pgrp, perr := unix.IoctlGetInt(0, unix.TIOCGPGRP)
		return outcome{Detail: fmt.Sprintf("isatty=%t ctty=%t sid=%d pgrp=%d", err == nil, perr == nil && pgrp == unix.Getpgrp(), sid, pgrp)}
	},
	"forkbomb": func(a []string) outcome {
		// Starts sleeping children until fork fails; reports how many it got.
		max, _ := strconv.Atoi(a[0])
		var pids []int
		var err error
		for len(pids) < max {
			var pid int
			pid, err = syscall.ForkExec("/bin/sleep", []string{"sleep", "30"}, &syscall.ProcAttr{})
			if err != nil {
				break
			}
			pids = append(pids, pid)
		}
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		return fromErr(err, strconv.Itoa(len(pids)))
	},
	"http-proxy": func(a []string) outcome {
		// Sends a request through the proxy named in HTTP_PROXY and reports the status line.
		u, err := url.Parse(os.Getenv("HTTP_PROXY"))
		if err != nil {
			return fromErr(err, "HTTP_PROXY")
		}
		c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
		if err != nil {
			return fromErr(err, "dial "+u.Host)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		auth := ""
		if pass, ok := u.User.Password(); ok {
			auth = "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)) + "\r\n"
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", a[0], strings.TrimPrefix(a[0], "http://"), auth)
		line, err := bufio.NewReader(c).ReadString('\n')
		return fromErr(err, strings.TrimSpace(line))
	},
	"env": func(a []string) outcome { return outcome{Detail: strings.Join(os.Environ(), "\n")} },
}

var dnsQuery = []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01")

// pidArg is a pid, or "parent" for the attempt's parent.
func pidArg(s string) int {
	if s == "parent" {
		return os.Getppid()
	}
	pid, _ := strconv.Atoi(s)
	return pid
}

func errnoOutcome(e syscall.Errno) outcome {
	if e == 0 {
		return outcome{}
	}
	return outcome{Errno: int(e), Err: e.Error()}
}

func closeIf(fd int, err error) {
	if err == nil {
		unix.Close(fd)
	}
}

func socketFor(ap netip.AddrPort, typ, proto int) (int, error) {
	family := unix.AF_INET
	if ap.Addr().Is6() {
		family = unix.AF_INET6
	}
	return unix.Socket(family, typ|unix.SOCK_CLOEXEC, proto)
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is6() {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

// runAttempt is the attempt tool's main.
func runAttempt(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "cordon-attempt: no attempt named")
		return 2
	}
	f, ok := attempts[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "cordon-attempt: unknown attempt %q\n", args[0])
		return 2
	}
	b, _ := json.Marshal(f(args[1:]))
	if out := os.Getenv("CORDON_ATTEMPT_OUT"); out != "" {
		if err := os.WriteFile(out, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "cordon-attempt:", err)
			return 2
		}
		return 0
	}
	fmt.Println(string(b))
	return 0
}
