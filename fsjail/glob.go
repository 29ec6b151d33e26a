package fsjail

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultMaxGlobEntries is the default of Config.MaxGlobEntries.
const DefaultMaxGlobEntries = 200000

// IsPattern reports whether a policy path is a glob pattern.
func IsPattern(p string) bool { return strings.ContainsAny(p, "*?[") }

// Expand returns the existing paths that match an absolute pattern, sorted. Within a name,
// "*", "?" and "[...]" match as in path/filepath.Match (a leading dot is not special); a
// whole component "**" matches any number of directories, including none. The walk does
// not follow symbolic links to directories. A "**" pattern whose fixed part is a strict
// ancestor of cwd (such as "/**/.env" or "~/**/.env" run from a project in the home
// directory) is expanded under cwd only: walking the whole disk at every start is not an
// option. Expand examines at most limit directory entries (DefaultMaxGlobEntries if limit
// is 0) and fails with ErrGlobTooBroad beyond that.
func Expand(pattern, cwd string, limit int) ([]string, error) {
	if !filepath.IsAbs(pattern) {
		return nil, fmt.Errorf("%w: %q is not absolute", ErrBadPattern, pattern)
	}
	if limit <= 0 {
		limit = DefaultMaxGlobEntries
	}
	pat := splitPath(filepath.Clean(pattern))
	for _, c := range pat {
		if c == "**" {
			continue
		}
		if strings.Contains(c, "**") {
			return nil, fmt.Errorf("%w: %q: \"**\" must be a whole path component", ErrBadPattern, pattern)
		}
		if _, err := filepath.Match(c, ""); err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrBadPattern, pattern, err)
		}
	}
	// The fixed part: the components before the first pattern character.
	fixed := 0
	for fixed < len(pat) && !IsPattern(pat[fixed]) {
		fixed++
	}
	root := "/" + strings.Join(pat[:fixed], "/")
	if fixed == len(pat) {
		if _, err := os.Lstat(root); err != nil {
			return nil, nil
		}
		return []string{root}, nil
	}
	m := matcher{pat: pat}
	states := m.closure([]int{fixed})
	if slices.Contains(pat[fixed:], "**") && cwd != "" && isStrictlyUnder(cwd, root) {
		// Walk from cwd: advance the states over cwd's components below root first.
		for _, name := range splitPath(strings.TrimPrefix(cwd, root)) {
			states = m.step(states, name)
			if len(states) == 0 {
				return nil, nil
			}
		}
		root = cwd
	}
	w := walker{m: m, limit: limit, pattern: pattern}
	if err := w.walk(root, states); err != nil {
		return nil, err
	}
	slices.Sort(w.out)
	return w.out, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// isStrictlyUnder reports whether p lies beneath dir (not equal to it).
func isStrictlyUnder(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}

// isUnder reports whether p is dir or lies beneath it.
func isUnder(p, dir string) bool { return p == dir || isStrictlyUnder(p, dir) }

// matcher runs a pattern's components as a small automaton: a state is the index of the
// next component to match; "**" may stay in place or be skipped.
type matcher struct{ pat []string }

func (m matcher) closure(states []int) []int {
	var out []int
	for i := 0; i < len(states); i++ {
		s := states[i]
		if slices.Contains(out, s) {
			continue
		}
		out = append(out, s)
		if s < len(m.pat) && m.pat[s] == "**" {
			states = append(states, s+1)
		}
	}
	return out
}

func (m matcher) step(states []int, name string) []int {
	var next []int
	for _, s := range states {
		if s == len(m.pat) {
			continue
		}
		if m.pat[s] == "**" {
			next = append(next, s)
		} else if ok, _ := filepath.Match(m.pat[s], name); ok {
			next = append(next, s+1)
		}
	}
	return m.closure(next)
}

type walker struct {
	m       matcher
	limit   int
	seen    int
	pattern string
	out     []string
}

func (w *walker) walk(dir string, states []int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // unreadable or gone: nothing to match there
	}
	w.seen += len(entries)
	if w.seen > w.limit {
		return fmt.Errorf("%w: %q examined more than %d entries under %s; narrow the pattern", ErrGlobTooBroad, w.pattern, w.limit, dir)
	}
	for _, e := range entries {
		next := w.m.step(states, e.Name())
		if len(next) == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if slices.Contains(next, len(w.m.pat)) {
			w.out = append(w.out, p)
		}
		if e.IsDir() && (len(next) > 1 || next[0] != len(w.m.pat)) {
			if err := w.walk(p, next); err != nil {
				return err
			}
		}
	}
	return nil
}
