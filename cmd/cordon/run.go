package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/cordonsh/cordon/policy"
	cordonrt "github.com/cordonsh/cordon/runtime"
)

const runUsage = `cordon runs one command in a sandbox: it can touch only the files its policy grants
and reach the network only through cordon's allowlisting proxy.

Usage:
  cordon [flags] -- COMMAND [ARG...]
  cordon COMMAND [flags]

Flags:
`

// runUsageFull is the run form's help, built when asked for.
func runUsageFull() string {
	fs := newFlagSet("cordon")
	(&policyFlags{}).register(fs)
	return runUsage + flagDefaults(fs) + `
Exit status: the command's own; 128+N if it was killed by signal N; 125 if cordon itself
failed (bad flags, bad policy, a restriction that cannot be applied); 126 if the command
cannot be executed; 127 if it is not found.
`
}

// runCommand is the run form: cordon [flags] -- COMMAND [ARG...].
func runCommand(args []string, io stdio) int {
	fs := newFlagSet("cordon")
	var pf policyFlags
	pf.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(io.out, runUsageFull())
			return 0
		}
		fmt.Fprintf(io.err, "cordon: %v\nRun 'cordon help' for usage.\n", err)
		return exitFailure
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprint(io.err, "cordon: no command given\nUsage: cordon [flags] -- COMMAND [ARG...]; 'cordon help' for more.\n")
		return exitFailure
	}
	pol, err := pf.load()
	if err != nil {
		fmt.Fprintf(io.err, "cordon: %v\n", err)
		return exitFailure
	}
	printNotes(pol, io)
	res, err := cordonrt.Run(context.Background(), cordonrt.Config{
		Policy: pol,
		Args:   argv,
		Stdin:  io.in,
		Stdout: fileOr(io.out, os.Stdout),
		Stderr: fileOr(io.err, os.Stderr),
		Diag:   io.err,
	})
	if err != nil {
		fmt.Fprintf(io.err, "cordon: %v\n", err)
		switch {
		case errors.Is(err, cordonrt.ErrNotFound):
			return exitNotFound
		case errors.Is(err, cordonrt.ErrNotExecutable):
			return exitNotExecutable
		}
		return exitFailure
	}
	return res.ExitCode
}

func printNotes(p *policy.Policy, io stdio) {
	for _, n := range p.Notes {
		fmt.Fprintf(io.err, "cordon: note: %s\n", n)
	}
}

// fileOr returns w as an *os.File if it is one, else def. The command's stdio must be real
// files so that it can be passed straight through.
func fileOr(w any, def *os.File) *os.File {
	if f, ok := w.(*os.File); ok {
		return f
	}
	return def
}
