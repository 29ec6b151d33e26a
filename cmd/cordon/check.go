package main

import (
	"fmt"

	"github.com/cordonsh/cordon/policy"
)

func init() {
	register(command{
		name:    "check",
		summary: "validate a policy and print the effective policy",
		usage: func() string {
			fs := newFlagSet("check")
			(&policyFlags{}).register(fs)
			return `Usage: cordon check [flags]

Loads the policy exactly as a run would (presets, the policy file, the flags), validates it,
and prints the effective policy as TOML, including the built-in deny lists in force.
Exits 0 if the policy is valid, 125 with the file, line and key of the first problem if not.

Flags:
` + flagDefaults(fs)
		},
		run: runCheck,
	})
}

func runCheck(args []string, io stdio) int {
	fs := newFlagSet("check")
	var pf policyFlags
	pf.register(fs)
	if !parseFlags(fs, args, io) {
		return exitFailure
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "cordon check: unexpected argument %q\n", fs.Arg(0))
		return exitFailure
	}
	// check shows an untrusted ./cordon.toml (reviewing it is the point) and says so.
	pol, err := pf.loadWith(func(path string, data []byte) error {
		if err := checkTrust(path, data); err != nil {
			fmt.Fprintf(io.err, "cordon check: note: %v\n", err)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(io.err, "cordon check: %v\n", err)
		return exitFailure
	}
	printNotes(pol, io)
	fmt.Fprint(io.out, policy.Format(pol))
	return 0
}
