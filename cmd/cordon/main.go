// Command cordon runs one command in a sandbox: it can touch only the files its policy grants
// and reach the network only through cordon's allowlisting proxy.
//
//	cordon [--policy FILE] [--preset NAME] [--allow-domain D]... [--allow-write P]... -- CMD [ARG...]
//	cordon check [--policy FILE]
//	cordon doctor
//	cordon version
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	cordonrt "github.com/cordonsh/cordon/runtime"
)

// Exit statuses of cordon itself, as in env(1), timeout(1) and docker run.
const (
	exitFailure       = 125 // cordon's own failure: bad flags, bad policy, unenforceable restriction
	exitNotExecutable = 126
	exitNotFound      = 127
)

func main() {
	// The re-exec'd in-sandbox init helper never returns from here.
	cordonrt.MaybeInit()
	os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}

// stdio is the process's standard streams; tests pass their own.
type stdio struct {
	in       *os.File
	out, err io.Writer
}

// command is one subcommand. Subcommands register themselves from their own file.
type command struct {
	name    string
	summary string        // one line for the command list
	usage   func() string // the full help text, built when asked for (not at every start)
	run     func(args []string, io stdio) int
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// run is the whole CLI; it returns the exit status.
func run(args []string, io stdio) int {
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "-help", "--help":
			if len(args) > 1 {
				if c, ok := commands[args[1]]; ok {
					fmt.Fprint(io.out, c.usage())
					return 0
				}
				fmt.Fprintf(io.err, "cordon: no command %q\n", args[1])
				return exitFailure
			}
			fmt.Fprint(io.out, mainUsage())
			return 0
		}
		if c, ok := commands[args[0]]; ok {
			for _, a := range args[1:] {
				if a == "--" {
					break
				}
				if a == "-h" || a == "-help" || a == "--help" {
					fmt.Fprint(io.out, c.usage())
					return 0
				}
			}
			return c.run(args[1:], io)
		}
	}
	return runCommand(args, io)
}

func mainUsage() string {
	var b strings.Builder
	b.WriteString(runUsageFull())
	b.WriteString("\nCommands:\n")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nRun 'cordon help COMMAND' for a command's flags. Docs: README.md, docs/.\n")
	return b.String()
}
