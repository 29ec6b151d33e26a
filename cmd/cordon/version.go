package main

import (
	"fmt"
	goruntime "runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func init() {
	register(command{
		name:    "version",
		summary: "print the version",
		usage: func() string {
			return "Usage: cordon version\n\nPrints cordon's version, the commit it was built from, and the Go version.\n"
		},
		run: runVersion,
	})
}

func runVersion(args []string, io stdio) int {
	if len(args) > 0 {
		fmt.Fprintf(io.err, "cordon version: unexpected argument %q\n", args[0])
		return exitFailure
	}
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " (" + s.Value[:12] + ")"
			}
		}
	}
	fmt.Fprintf(io.out, "cordon %s%s %s %s/%s\n", version, rev, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
	return 0
}
