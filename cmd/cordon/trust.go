package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cordonsh/cordon/policy"
)

// A project's ./cordon.toml is picked up without being named, so a repository could ship one
// that widens the sandbox or names secrets to send to its own hosts. cordon uses such a file
// only once the user has trusted that exact content (`cordon trust`), like direnv's allow.
// A file named with --policy is trusted: the user chose it.

func init() {
	register(command{
		name:    "trust",
		summary: "trust ./cordon.toml (or FILE) in its current content",
		usage: func() string {
			return `Usage: cordon trust [--revoke] [FILE]

A policy file that cordon finds in the working directory (./cordon.toml) can widen the
sandbox and name secrets, so cordon uses it only after you have trusted its exact content.
Review the file (cordon check prints the effective policy), then run 'cordon trust'. Any
change to the file needs a new 'cordon trust'. Files named with --policy need no trust.

The trust store is ~/.config/cordon/trusted.json (which sandboxed commands cannot read or
write under the built-in lists).

Flags:
  --revoke   forget FILE instead of trusting it
`
		},
		run: runTrust,
	})
}

func runTrust(args []string, io stdio) int {
	fs := newFlagSet("trust")
	revoke := fs.Bool("revoke", false, "forget FILE")
	if !parseFlags(fs, args, io) {
		return exitFailure
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(io.err, "cordon trust: unexpected argument %q\n", fs.Arg(1))
		return exitFailure
	}
	file := policy.DefaultFile
	if fs.NArg() == 1 {
		file = fs.Arg(0)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		fmt.Fprintf(io.err, "cordon trust: %v\n", err)
		return exitFailure
	}
	store, err := loadTrust()
	if err != nil {
		fmt.Fprintf(io.err, "cordon trust: %v\n", err)
		return exitFailure
	}
	if *revoke {
		delete(store, abs)
		if err := saveTrust(store); err != nil {
			fmt.Fprintf(io.err, "cordon trust: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(io.out, "cordon: no longer trusting %s\n", abs)
		return 0
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		fmt.Fprintf(io.err, "cordon trust: %v\n", err)
		return exitFailure
	}
	// Refuse to trust a file that does not load: the user would trust an error.
	pf := policyFlags{file: abs}
	if _, err := pf.load(); err != nil {
		fmt.Fprintf(io.err, "cordon trust: %v\n", err)
		return exitFailure
	}
	store[abs] = digest(data)
	if err := saveTrust(store); err != nil {
		fmt.Fprintf(io.err, "cordon trust: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(io.out, "cordon: trusting %s (sha256 %s)\n", abs, store[abs][:16])
	return 0
}

// checkTrust is policy.Options.Discovered for the run form.
func checkTrust(path string, data []byte) error {
	store, err := loadTrust()
	if err != nil {
		return err
	}
	switch want, ok := store[path]; {
	case !ok:
		return fmt.Errorf("%s is not trusted: a project's policy file can widen the sandbox and name secrets, "+
			"so cordon uses it only once you have reviewed it. Review it ('cordon check' prints the effective policy), "+
			"then run 'cordon trust', or name it with --policy to use it this once", path)
	case want != digest(data):
		return fmt.Errorf("%s changed since you trusted it; review it ('cordon check'), then run 'cordon trust' again, "+
			"or name it with --policy to use it this once", path)
	}
	return nil
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func trustFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory: %w", err)
	}
	return filepath.Join(dir, "cordon", "trusted.json"), nil
}

func loadTrust() (map[string]string, error) {
	path, err := trustFile()
	if err != nil {
		return nil, err
	}
	store := map[string]string{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return store, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read trust store: %w", err)
	}
	if err := json.Unmarshal(data, &store); err != nil {
		return nil, fmt.Errorf("read trust store %s: %v", path, err)
	}
	return store, nil
}

func saveTrust(store map[string]string) error {
	path, err := trustFile()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write trust store: %w", err)
	}
	data, _ := json.MarshalIndent(store, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write trust store: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write trust store: %w", err)
	}
	return nil
}
