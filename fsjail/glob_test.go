package fsjail

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tree makes files (and directories, for names ending in "/") under a temp dir.
func tree(t *testing.T, paths ...string) string {
	t.Helper()
	root := t.TempDir()
	root, _ = filepath.EvalSymlinks(root)
	for _, p := range paths {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func rel(root string, paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, strings.TrimPrefix(p, root+"/"))
	}
	return out
}

func TestExpand(t *testing.T) {
	root := tree(t, ".env", "a/.env", "a/b/c/.env", "a/b/.env.local", "a/key.pem", "a/b/key.pem",
		"node_modules/x/.env", "other/.envrc", ".git/config", "empty/")
	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pattern string
		cwd     string
		want    []string
	}{
		{"**/.env", "", []string{".env", "a/.env", "a/b/c/.env", "node_modules/x/.env"}},
		{"*.pem", "", nil},
		{"a/*.pem", "", []string{"a/key.pem"}},
		{"a/**/*.pem", "", []string{"a/b/key.pem", "a/key.pem"}},
		{"**/.env*", "", []string{".env", "a/.env", "a/b/.env.local", "a/b/c/.env", "node_modules/x/.env", "other/.envrc"}},
		{"a/**", "", []string{"a/.env", "a/b", "a/b/.env.local", "a/b/c", "a/b/c/.env", "a/b/key.pem", "a/key.pem"}},
		{"?/.env", "", []string{"a/.env"}},
		{"[ab]/key.pem", "", []string{"a/key.pem"}},
		{".git/config", "", []string{".git/config"}},
		{"missing", "", nil},
		{"link/*.pem", "", []string{"link/key.pem"}}, // the fixed part may hold a link
		{"**/link", "", []string{"link"}},            // a link to a directory matches, is not walked
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			got, err := Expand(filepath.Join(root, tt.pattern), tt.cwd, 0)
			if err != nil {
				t.Fatal(err)
			}
			if r := rel(root, got); !slices.Equal(r, tt.want) {
				t.Errorf("got %q, want %q", r, tt.want)
			}
		})
	}
	t.Run("prefix above cwd walks cwd only", func(t *testing.T) {
		pattern := filepath.Join(filepath.Dir(root), "**", ".env")
		got, err := Expand(pattern, filepath.Join(root, "a"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if r := rel(root, got); !slices.Equal(r, []string{"a/.env", "a/b/c/.env"}) {
			t.Errorf("got %q", r)
		}
	})
	t.Run("too broad", func(t *testing.T) {
		_, err := Expand(filepath.Join(root, "**", "x"), "", 5)
		if !errors.Is(err, ErrGlobTooBroad) {
			t.Errorf("err %v, want ErrGlobTooBroad", err)
		}
	})
	for _, bad := range []string{"relative/**", "/a/**x/b", "/a/[/b"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := Expand(bad, "", 0); !errors.Is(err, ErrBadPattern) {
				t.Errorf("err %v, want ErrBadPattern", err)
			}
		})
	}
}

// FuzzMatch checks the pattern automaton against path/filepath.Match, component by
// component, for patterns without "**", and that "**" patterns never panic.
func FuzzMatch(f *testing.F) {
	f.Add("a/*/c", "a/b/c")
	f.Add("**/.env", "x/y/.env")
	f.Add("[a-", "a")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		pat := splitPath(pattern)
		names := splitPath(path)
		m := matcher{pat: pat}
		states := m.closure([]int{0})
		for _, n := range names {
			states = m.step(states, n)
		}
		got := slices.Contains(states, len(pat))
		if slices.Contains(pat, "**") || len(pat) != len(names) {
			return
		}
		want := true
		for i := range pat {
			ok, err := filepath.Match(pat[i], names[i])
			if err != nil || !ok {
				want = false
			}
		}
		if got != want {
			t.Errorf("pattern %q on %q: got %t, want %t", pattern, path, got, want)
		}
	})
}
