package main

import (
	"fmt"
	"os"

	"github.com/cordonsh/cordon/policy"
)

func init() {
	register(command{
		name:    "import",
		summary: "convert another sandbox's settings to a cordon policy",
		usage: func() string {
			return `Usage: cordon import srt FILE

Reads sandbox-runtime JSON settings (the ~/.srt-settings.json format) and prints the
equivalent cordon policy as TOML. Keys that cordon does not support are listed on stderr
and in comments, and are not applied. ('cordon --policy FILE' also reads such a file
directly.)
`
		},
		run: runImport,
	})
}

func runImport(args []string, io stdio) int {
	if len(args) != 2 || args[0] != "srt" {
		fmt.Fprint(io.err, "Usage: cordon import srt FILE\n")
		return exitFailure
	}
	data, err := os.ReadFile(args[1])
	if err != nil {
		fmt.Fprintf(io.err, "cordon import: %v\n", err)
		return exitFailure
	}
	out, notes, err := policy.FromSRT(args[1], data)
	if err != nil {
		fmt.Fprintf(io.err, "cordon import: %v\n", err)
		return exitFailure
	}
	for _, n := range notes {
		fmt.Fprintf(io.err, "cordon import: not imported: %s\n", n)
	}
	fmt.Fprint(io.out, string(out))
	return 0
}
