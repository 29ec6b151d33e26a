package runtime

import (
	"encoding/json"
	"errors"

	"github.com/cordonsh/cordon/fsjail"
	"github.com/cordonsh/cordon/runtime/internal/seccomp"
	"golang.org/x/sys/unix"
)

// initArg0 is the argv[0] that makes a cordon process (or a test binary) the init helper.
const initArg0 = "cordon-init"

// probeArg, as argv[1], makes the helper only try its namespaces and exit.
const probeArg = "probe"

// The helper's descriptors besides stdio.
const (
	// fdStatus is a SOCK_SEQPACKET socket to the supervisor: the helper reports on it (one
	// JSON message per packet, the proxy listener as SCM_RIGHTS), and the supervisor shuts
	// its side down to ask the helper to end the run.
	fdStatus = 3
	// fdConfig is a pipe from the supervisor: the initConfig as JSON, then end of file.
	fdConfig = 4
)

// maxMessage bounds a status message.
const maxMessage = 64 << 10

// initConfig is everything the helper needs; the supervisor decides it all.
type initConfig struct {
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
	// like the proxy's: one msgListener each, with Route set.
	Routes []routeListener `json:"routes,omitempty"`
}

// message is one report from the helper.
type message struct {
	Type   string `json:"t"` // msgListener, msgError, msgExec, msgStarted, msgExit
	Step   string `json:"step,omitempty"`
	Err    string `json:"err,omitempty"`
	Errno  int    `json:"errno,omitempty"`
	Pid    int    `json:"pid,omitempty"`
	Code   int    `json:"code,omitempty"`
	Signal int    `json:"sig,omitempty"`
	Route  string `json:"route,omitempty"` // msgListener: the upstream route it is for
	fds    []int
}

const (
	msgListener = "listener" // with the proxy listener's descriptor
	msgError    = "error"    // setup failed at Step; nothing was started
	msgExec     = "exec"     // the command could not be executed: Errno
	msgStarted  = "started"  // the command runs as Pid (in the helper's PID namespace)
	msgExit     = "exit"     // the command ended with Code (128+Signal if killed)
)

// The setup steps, as named in errors.
const (
	stepConfig   = "reading the configuration"
	stepLoopback = "bringing up loopback"
	stepListen   = "creating the proxy listener"
	stepMount    = "mounting"
	stepRlimit   = "setting the process limit"
	stepNNP      = "setting no_new_privs"
	stepLandlock = "applying Landlock"
	stepCaps     = "dropping capabilities"
	stepSeccomp  = "installing the seccomp filter"
	stepDir      = "entering the working directory"
)

func errnoOf(err error) int {
	var e unix.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return 0
}

func encode(m message) []byte {
	b, _ := json.Marshal(m)
	return b
}
