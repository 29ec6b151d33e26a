package runtime

import (
	"os"
	"path/filepath"
	"strings"
)

// gitFileDenies protects a git worktree's or submodule's ".git" file, which names the real
// git directory (a changed one would point git at a directory with hooks of the command's
// choosing), and the hooks and config of the directory it names.
func gitFileDenies(dir string) []string {
	gitFile := filepath.Join(dir, ".git")
	fi, err := os.Lstat(gitFile)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	out := []string{gitFile}
	b, err := os.ReadFile(gitFile)
	if err != nil {
		return out
	}
	gitdir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
	if !ok {
		return out
	}
	gitdir = strings.TrimSpace(gitdir)
	if !filepath.IsAbs(gitdir) {
		gitdir = filepath.Join(dir, gitdir)
	}
	out = append(out, filepath.Join(gitdir, "config"), filepath.Join(gitdir, "hooks"))
	if c, err := os.ReadFile(filepath.Join(gitdir, "commondir")); err == nil {
		common := strings.TrimSpace(string(c))
		if !filepath.IsAbs(common) {
			common = filepath.Join(gitdir, common)
		}
		out = append(out, filepath.Join(common, "config"), filepath.Join(common, "hooks"))
	}
	return out
}
