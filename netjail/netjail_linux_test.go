package netjail

import (
	"fmt"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestListenAndPassDescriptor(t *testing.T) {
	fd, err := ListenLoopback(0)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sv[0])
	defer unix.Close(sv[1])
	if err := SendFD(sv[0], []byte(`{"t":"listener"}`), fd); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	buf := make([]byte, 64)
	n, fds, err := ReadMsg(sv[1], buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != `{"t":"listener"}` || len(fds) != 1 {
		t.Fatalf("got %q with %d descriptors", buf[:n], len(fds))
	}
	if flags, _ := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received descriptor is not close-on-exec")
	}
	f := os.NewFile(uintptr(fds[0]), "listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			fmt.Fprint(c, "ok")
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := c.Read(b); err != nil || string(b) != "ok" {
		t.Errorf("read %q, %v", b, err)
	}
	c.Close()
}

func TestRefused(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&os.SyscallError{Syscall: "clone", Err: unix.EPERM}, true},
		{fmt.Errorf("fork/exec: %w", unix.ENOSPC), true},
		{fmt.Errorf("mount: %w", unix.EACCES), true},
		{unix.ENOMEM, false},
		{fmt.Errorf("other"), false},
	} {
		if got := Refused(tt.err); got != tt.want {
			t.Errorf("Refused(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}
