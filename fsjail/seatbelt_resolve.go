package fsjail

import (
	"os"
	"path/filepath"
	"strings"
)

// ResolvePath returns the spelling under which the kernel checks an absolute path: its
// longest existing prefix with every symbolic link resolved (on macOS, as the kernel itself
// spells the file it reaches: /tmp becomes /private/tmp, /var /private/var, and a name
// typed in another case on a case-insensitive volume becomes the name on disk), followed by
// the rest of the path as given. A path that cannot be resolved at all is returned as it is.
func ResolvePath(p string) string {
	p = filepath.Clean(p)
	rest := ""
	for a := p; ; a = filepath.Dir(a) {
		if r, ok := canonicalExisting(a); ok {
			return filepath.Join(r, rest)
		}
		if a == "/" {
			return p
		}
		rest = filepath.Join(filepath.Base(a), rest)
	}
}

// evalExisting resolves the symbolic links of an existing path with the standard library.
func evalExisting(p string) (string, bool) {
	if _, err := os.Lstat(p); err != nil {
		return "", false
	}
	r, err := filepath.EvalSymlinks(p)
	if err != nil || !strings.HasPrefix(r, "/") {
		return "", false
	}
	return filepath.Clean(r), true
}
