package runtime

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// What the helper of a macOS run (seatbelt_helper.go) shares with Linux's init helper by
// name; these are the darwin definitions.

const (
	msgError   = "error"   // setup failed at Step; the command was not started
	msgExec    = "exec"    // the command could not be executed: Errno
	msgStarted = "started" // the command runs as Pid
	msgExit    = "exit"    // the command ended with Code (128+Signal if killed)
)

// The setup steps, as named in errors.
const (
	stepConfig = "reading the configuration"
	stepRlimit = "setting the process limit"
	stepDir    = "entering the working directory"
)

// forwarded are the signals passed on to the command: SIGINT and SIGQUIT to its process
// group, as a terminal would send them, the others to the command alone.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

func maybeInit() {
	if len(os.Args) < 2 || os.Args[1] != helperArg || os.Getenv("CORDON_HELPER") != "seatbelt" {
		return
	}
	os.Exit(seatbeltHelperMain())
}

func errnoOf(err error) int {
	var e unix.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return 0
}
