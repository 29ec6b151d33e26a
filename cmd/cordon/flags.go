package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cordonsh/cordon/policy"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// policyFlags are the flags that choose and extend the policy, shared by the run form and
// `check`.
type policyFlags struct {
	file        string
	presets     listFlag
	allowDomain listFlag
	allowRead   listFlag
	allowWrite  listFlag
	mode        string
}

func (pf *policyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&pf.file, "policy", "", "policy `FILE` (TOML, or sandbox-runtime JSON settings); default ./cordon.toml if present")
	fs.Var(&pf.presets, "preset", "start from the built-in preset `NAME` ("+strings.Join(policy.PresetNames(), ", ")+"); repeatable")
	fs.Var(&pf.allowDomain, "allow-domain", "allow the destination `PATTERN` (example.com, *.example.com, host:port); repeatable")
	fs.Var(&pf.allowRead, "allow-read", "allow reading `PATH`; repeatable")
	fs.Var(&pf.allowWrite, "allow-write", "allow writing `PATH`; repeatable")
	fs.StringVar(&pf.mode, "mode", "", "confinement `MODE`: auto, namespace or fallback (default from the policy, else auto)")
}

// load reads the policy the flags name, resolving paths against the working directory. A
// ./cordon.toml found without --policy must be trusted (see trust.go).
func (pf *policyFlags) load() (*policy.Policy, error) {
	return pf.loadWith(checkTrust)
}

func (pf *policyFlags) loadWith(discovered func(string, []byte) error) (*policy.Policy, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("working directory: %w", err)
	}
	home, _ := os.UserHomeDir()
	return policy.Load(policy.Options{
		File:    pf.file,
		Presets: pf.presets,
		Flags: policy.Flags{
			AllowDomains: pf.allowDomain,
			AllowRead:    pf.allowRead,
			AllowWrite:   pf.allowWrite,
			Mode:         pf.mode,
		},
		Env:        policy.Env{Home: home, Cwd: cwd},
		Discovered: discovered,
	})
}

// newFlagSet returns a FlagSet that reports errors instead of exiting, and prints usage
// only when asked.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args and reports a flag error on stderr; ok is false if the caller
// should return exitFailure.
func parseFlags(fs *flag.FlagSet, args []string, io stdio) bool {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false
		}
		fmt.Fprintf(io.err, "cordon: %v\nRun 'cordon help' for usage.\n", err)
		return false
	}
	return true
}

// flagDefaults renders the flags of fs for a help text.
func flagDefaults(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	// Show flags the way they are usually written; both forms are accepted.
	return strings.ReplaceAll("\n"+b.String(), "\n  -", "\n  --")[1:]
}
