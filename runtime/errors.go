package runtime

import "errors"

// Errors that map to the exit statuses of the CLI contract; match them with errors.Is.
// Any other error from Run means exit status 125.
var (
	// ErrNotFound: the command was not found (exit 127).
	ErrNotFound = errors.New("command not found")
	// ErrNotExecutable: the command was found but could not be executed (exit 126).
	ErrNotExecutable = errors.New("command not executable")
	// ErrUnsupported: this platform or build cannot confine a command (exit 125).
	ErrUnsupported = errors.New("sandbox not supported here")
	// ErrUnenforceable: a restriction of the policy cannot be applied on this machine and
	// the policy does not ask for best effort (exit 125).
	ErrUnenforceable = errors.New("restriction cannot be enforced")
	// ErrNamespacesRefused: the machine does not let cordon create user namespaces, and the
	// policy does not allow the fallback mode (exit 125).
	ErrNamespacesRefused = errors.New("user namespaces are refused on this machine")
	// ErrSetup: the sandbox could not be set up; the command did not run (exit 125).
	ErrSetup = errors.New("sandbox setup failed")
)
