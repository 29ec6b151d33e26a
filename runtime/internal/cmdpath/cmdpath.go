//go:build unix

// Package cmdpath finds a command the way a shell does, as the sandbox sees the filesystem.
// The init helpers of both platforms use it, before they execute the command.
package cmdpath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// OpLookup names a failure to find the command, as opposed to one to execute it.
const OpLookup = "look up"

// LookPath finds the command like a shell would, in the sandbox's view: a name with a slash
// is a path (relative to dir), anything else is searched in PATH.
func LookPath(file, dir, path string) (string, error) {
	check := func(p string) error {
		full := p
		if !filepath.IsAbs(full) {
			full = filepath.Join(dir, full)
		}
		fi, err := os.Stat(full)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return unix.EISDIR
		}
		if fi.Mode()&0o111 == 0 {
			return unix.EACCES
		}
		return nil
	}
	if strings.Contains(file, "/") {
		if err := check(file); err != nil {
			return "", &os.PathError{Op: OpLookup, Path: file, Err: err}
		}
		return file, nil
	}
	var firstErr error
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		err := check(p)
		if err == nil {
			if !filepath.IsAbs(p) {
				p = "./" + p
			}
			return p, nil
		}
		if firstErr == nil && (errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EACCES) && fileExists(p)) {
			firstErr = err // found but not executable: reported if nothing better turns up
		}
	}
	if firstErr != nil {
		return "", &os.PathError{Op: OpLookup, Path: file, Err: firstErr}
	}
	return "", &os.PathError{Op: OpLookup, Path: file, Err: unix.ENOENT}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// EnvValue returns the last value of the variable name in env, or "".
func EnvValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}
