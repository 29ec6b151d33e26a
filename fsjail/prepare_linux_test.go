package fsjail

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

func TestPrepareMounts(t *testing.T) {
	root := tree(t, "home/.ssh/id_rsa", "home/proj/.env", "home/proj/.git/config", "home/proj/.git/hooks/", "home/proj/src/main.go", "ro/.bashrc")
	home, proj := filepath.Join(root, "home"), filepath.Join(root, "home", "proj")
	cfg := Config{
		Read:      []string{"/"},
		Write:     []string{proj},
		DenyRead:  []string{filepath.Join(home, ".ssh"), filepath.Join(proj, ".env"), filepath.Join(home, ".aws")},
		DenyWrite: []string{filepath.Join(proj, ".git/config"), filepath.Join(proj, ".git/hooks"), filepath.Join(proj, ".mcp.json"), filepath.Join(proj, ".claude/commands"), filepath.Join(root, "ro/.bashrc"), filepath.Join(root, "ro/.zshrc")},
		Cwd:       proj,
		Mounts:    true,
	}
	p, err := Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Cleanup()
	want := []Mount{
		{filepath.Join(home, ".ssh"), MaskDir},
		{filepath.Join(proj, ".env"), MaskFile},
		{filepath.Join(proj, ".git"), Pin},
		{filepath.Join(proj, ".mcp.json"), ReadOnly},
		{filepath.Join(proj, ".git/config"), ReadOnly},
		{filepath.Join(proj, ".git/hooks"), ReadOnly},
	}
	if !slices.Equal(p.Mounts, want) {
		t.Errorf("mounts:\n got  %v\n want %v", p.Mounts, want)
	}
	// home is not writable: proj itself needs no pin, .git does.
	// Placeholders stand in for the missing paths in the writable tree only, with the type
	// their name suggests, and go away. A path whose parent is missing too (.claude/commands)
	// gets no placeholder (it would block creating .claude at all) but is watched.
	if want := []string{filepath.Join(proj, ".mcp.json")}; !slices.Equal(p.Placeholders, want) {
		t.Errorf("placeholders %v, want %v", p.Placeholders, want)
	}
	if fi, err := os.Stat(filepath.Join(proj, ".mcp.json")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o444 || fi.Size() != 0 {
		t.Errorf("placeholder .mcp.json: %v %v", fi, err)
	}
	if want := []string{filepath.Join(proj, ".claude/commands")}; !slices.Equal(p.Watched, want) {
		t.Errorf("watched %v, want %v", p.Watched, want)
	}
	if err := os.MkdirAll(filepath.Join(proj, ".claude/commands"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := p.Created(); !slices.Equal(got, p.Watched) {
		t.Errorf("Created() = %v after creating it", got)
	}
	if _, err := os.Lstat(filepath.Join(root, "ro/.zshrc")); err == nil {
		t.Errorf("a placeholder was made outside the writable tree")
	}
	if slices.ContainsFunc(p.Holes, func(h Hole) bool { return h.Path != "/dev" }) {
		t.Errorf("holes in mount mode: %v", p.Holes)
	}
	if !slices.ContainsFunc(p.Holes, func(h Hole) bool { return h.Path == "/dev" && h.OnlyAncestors }) {
		t.Errorf("no /dev hole although / is granted: %v", p.Holes)
	}
	if left := p.Cleanup(); len(left) > 0 {
		t.Errorf("left %v", left)
	}
	if _, err := os.Lstat(filepath.Join(proj, ".mcp.json")); err == nil {
		t.Errorf(".mcp.json left after Cleanup")
	}
}

func TestPlaceholderOwners(t *testing.T) {
	root := tree(t, "proj/")
	proj := filepath.Join(root, "proj")
	cfg := Config{Write: []string{proj}, DenyWrite: []string{filepath.Join(proj, ".envrc")}, Mounts: true}

	// A run that was killed left its placeholder: the next run adopts and removes it.
	dead := cfg
	dead.Owner = deadPid(t)
	p1, err := Prepare(dead)
	if err != nil {
		t.Fatal(err)
	}
	p1.Placeholders = nil // as if killed: no Cleanup
	if placeholderOwners(filepath.Join(proj, ".envrc")) == nil {
		t.Skip("no user xattrs on this filesystem")
	}
	p2, err := Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p2.Placeholders, filepath.Join(proj, ".envrc")) {
		t.Fatalf("stale placeholder not adopted: %v", p2.Placeholders)
	}
	// A second live run shares it; the first to finish leaves it to the other.
	other := cfg
	other.Owner = os.Getppid()
	p3, err := Prepare(other)
	if err != nil {
		t.Fatal(err)
	}
	p2.Cleanup()
	if _, err := os.Lstat(filepath.Join(proj, ".envrc")); err != nil {
		t.Fatalf("removed while another run uses it: %v", err)
	}
	p3.Cleanup()
	if _, err := os.Lstat(filepath.Join(proj, ".envrc")); err == nil {
		t.Errorf("left after the last run")
	}
}

// deadPid returns a pid that is not running.
func deadPid(t *testing.T) int {
	for pid := 4000000; pid > 3000000; pid-- {
		if !alive(pid) {
			return pid
		}
	}
	t.Skip("no free pid")
	return 0
}

func TestPrepareHoles(t *testing.T) {
	root := tree(t, "home/.ssh/id_rsa", "home/notes", "home/proj/.git/config", "home/proj/a.go", "home/proj/sub/b.go")
	home, proj := filepath.Join(root, "home"), filepath.Join(root, "home", "proj")
	p, err := Prepare(Config{
		Read:      []string{home},
		Write:     []string{proj},
		DenyRead:  []string{filepath.Join(home, ".ssh")},
		DenyWrite: []string{filepath.Join(proj, ".git/config"), filepath.Join(proj, ".mcp.json")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Mounts) > 0 || len(p.Placeholders) > 0 {
		t.Errorf("mounts %v, placeholders %v without Mounts", p.Mounts, p.Placeholders)
	}
	if !strings.Contains(strings.Join(p.NotEnforced, "\n"), ".mcp.json") {
		t.Errorf("NotEnforced does not name the missing path: %q", p.NotEnforced)
	}
	effects := strings.Join(p.Effects, "\n")
	if !strings.Contains(effects, "directly in "+proj+", "+proj+"/.git (") || !strings.Contains(effects, "cannot be read") {
		t.Errorf("effects: %q", p.Effects)
	}

	rules, err := p.rules()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, r := range rules {
		got[strings.TrimPrefix(r.path, root)] |= r.access
	}
	read := Read.landlock()
	rw := (Read | Write).landlock()
	want := map[string]uint64{
		"/home":                read &^ llReadFiles, // ancestor of .ssh: list only
		"/home/notes":          read,
		"/home/.ssh":           0,    // no rule: nothing beneath it is granted
		"/home/proj":           read, // ancestors of .git/config: no writing
		"/home/proj/.git":      read,
		"/home/proj/a.go":      rw,
		"/home/proj/sub":       rw,
		"/home/proj/.git/conf": 0,
	}
	for path, access := range want {
		if got[path] != access {
			t.Errorf("%s: access %#x, want %#x", path, got[path], access)
		}
	}
	if got["/home/proj/.git/config"]&llWrite != 0 {
		t.Errorf(".git/config is writable: %#x", got["/home/proj/.git/config"])
	}
	if got["/home/proj/.git/config"]&ll.AccessFSReadFile == 0 {
		t.Errorf(".git/config is not readable: %#x", got["/home/proj/.git/config"])
	}
}
