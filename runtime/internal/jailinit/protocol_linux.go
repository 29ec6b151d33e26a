// Package jailinit is cordon's init helper on Linux: the process that the supervisor starts
// as /proc/self/exe with argv[0] "cordon-init", in the sandbox's new namespaces (or as a plain
// child in fallback mode), to set the sandbox up from the inside, start the command confined,
// and stay as its reaper. This file is the protocol between the two; init_linux.go is the
// helper. The supervisor's side is in package runtime.
package jailinit

import (
	"encoding/json"
	"errors"

	"github.com/cordonsh/cordon/fsjail"
	"github.com/cordonsh/cordon/runtime/internal/seccomp"
	"golang.org/x/sys/unix"
)

// Arg0 is the argv[0] that makes a cordon process (or a test binary) the init helper.
const Arg0 = "cordon-init"

// ProbeArg, as argv[1], makes the helper only try its namespaces and exit.
const ProbeArg = "probe"

// The helper's descriptors besides stdio.
const (
	// FdStatus is a SOCK_SEQPACKET socket to the supervisor: the helper reports on it (one
	// JSON Message per packet, the proxy listener as SCM_RIGHTS), and the supervisor shuts
	// its side down to ask the helper to end the run.
	FdStatus = 3
	// FdConfig is a pipe from the supervisor: the Config as JSON, then end of file.
	FdConfig = 4
)

// MaxMessage bounds a status Message.
const MaxMessage = 64 << 10

// Config is everything the helper needs; the supervisor decides it all.
type Config struct {
	Namespace bool     `json:"namespace"` // namespace mode, else fallback
	Args      []string `json:"args"`
	Env       []string `json:"env"`
	Dir       string   `json:"dir"`

	ProxyPort int          `json:"proxy_port"` // listener inside the namespace
	Plan      *fsjail.Plan `json:"plan"`
	Scratch   string       `json:"scratch"` // where the mask sources are made
	Landlock  bool         `json:"landlock"`
	Net       fsjail.NetRules
	Seccomp   bool           `json:"seccomp"`
	Filter    seccomp.Policy `json:"filter"`
	// NProc is the RLIMIT_NPROC for the command, 0 for none.
	NProc uint64 `json:"nproc"`
	// CgroupLeave is the cgroup.procs file the helper moves itself to once the command's
	// processes are gone, so that the supervisor can remove the run's cgroup at once.
	CgroupLeave string `json:"cgroup_leave,omitempty"`
	// Setctty makes stdin the command's controlling terminal (it is a fresh pty).
	Setctty bool `json:"setctty"`

	// Routes are the upstream routes' listeners, created in the namespace and handed over
	// like the proxy's: one MsgListener each, with Route set.
	Routes []RouteListener `json:"routes,omitempty"`
}

// RouteListener is an upstream route's listener inside the sandbox's network namespace.
type RouteListener struct {
	Name string `json:"name"`
	Port int    `json:"port"`
}

// Message is one report from the helper.
type Message struct {
	Type   string `json:"t"` // MsgListener, MsgError, MsgExec, MsgStarted, MsgExit
	Step   string `json:"step,omitempty"`
	Err    string `json:"err,omitempty"`
	Errno  int    `json:"errno,omitempty"`
	Pid    int    `json:"pid,omitempty"`
	Code   int    `json:"code,omitempty"`
	Signal int    `json:"sig,omitempty"`
	Route  string `json:"route,omitempty"` // MsgListener: the upstream route it is for
	FDs    []int  `json:"-"`               // descriptors that came with the message
}

const (
	MsgListener = "listener" // with the proxy listener's descriptor
	MsgError    = "error"    // setup failed at Step; nothing was started
	MsgExec     = "exec"     // the command could not be executed: Errno
	MsgStarted  = "started"  // the command runs as Pid (in the helper's PID namespace)
	MsgExit     = "exit"     // the command ended with Code (128+Signal if killed)
)

// The setup steps, as named in errors.
const (
	StepConfig   = "reading the configuration"
	StepLoopback = "bringing up loopback"
	StepListen   = "creating the proxy listener"
	StepMount    = "mounting"
	StepRlimit   = "setting the process limit"
	StepNNP      = "setting no_new_privs"
	StepLandlock = "applying Landlock"
	StepCaps     = "dropping capabilities"
	StepSeccomp  = "installing the seccomp filter"
	StepDir      = "entering the working directory"
)

func ErrnoOf(err error) int {
	var e unix.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return 0
}

func Encode(m Message) []byte {
	b, _ := json.Marshal(m)
	return b
}
