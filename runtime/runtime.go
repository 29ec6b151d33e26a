// Package runtime runs one command inside cordon's sandbox: it turns a policy into the
// configurations of fsjail, netjail and netproxy, starts the proxy, spawns the command
// through the re-exec'd init helper, forwards signals, waits, and reports.
//
// The package name shadows the standard library's runtime; import that one as goruntime.
package runtime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/cordonsh/cordon/policy"
)

// Errors that map to the exit statuses of the CLI contract; match them with errors.Is.
var (
	// ErrNotFound: the command was not found (exit 127).
	ErrNotFound = errors.New("command not found")
	// ErrNotExecutable: the command was found but could not be executed (exit 126).
	ErrNotExecutable = errors.New("command not executable")
	// ErrUnsupported: this platform or build cannot confine a command (exit 125).
	ErrUnsupported = errors.New("sandbox not supported here")
)

// Config is one run.
type Config struct {
	// Policy is the validated policy to enforce. Required.
	Policy *policy.Policy
	// Args is the command and its arguments; Args[0] is looked up in PATH. Required.
	Args []string
	// Dir is the command's working directory. Defaults to the current directory.
	Dir string
	// Env is the environment before the policy's env_deny is applied. Defaults to os.Environ().
	Env []string
	// Stdin, Stdout and Stderr are the command's standard streams. Default to os.Stdin,
	// os.Stdout and os.Stderr.
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
	// Diag receives cordon's own messages to the user (warnings, the summary of blocked
	// requests). Defaults to Stderr.
	Diag io.Writer
	// Logger receives debug logs. Defaults to a logger that discards.
	Logger *slog.Logger
}

// Result is the outcome of a run that started the command.
type Result struct {
	// ExitCode is the command's exit status, or 128+N if it was killed by signal N.
	ExitCode int
}

// Run runs the command under the policy and waits for it. An error means the command did
// not run (or its confinement could not be completed, in which case it was killed).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	return nil, errors.Join(ErrUnsupported, errors.New("the Linux jail is not built yet; refusing to run the command unconfined"))
}

// MaybeInit runs the in-sandbox init helper if this process was started as one, and never
// returns in that case. main and TestMain call it first thing.
func MaybeInit() {}
