package fsjail

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Rights taken away by the kinds of holes.
const (
	// A deny_read path loses every right but writing: in a writable tree it can still be
	// overwritten or removed (Landlock-only mode), never read. Its ancestors keep listing,
	// so names beneath a denied directory can be listed, not read.
	readHoleDeny     = Read | Ioctl | ConnectUnix
	readHoleAncestor = ReadFiles | Ioctl | ConnectUnix
	// A deny_write path loses writing; so do its ancestors, since a right on a directory
	// reaches everything beneath it, and a directory that can be renamed can be replaced.
	writeHoleDeny     = Write
	writeHoleAncestor = Write
	// /dev is never granted wholesale: below it only the runtime's grants count (a block
	// device readable by its owner would bypass every other rule).
	devHoleDeny     = All
	devHoleAncestor = All &^ ListDirs
)

const placeholderXattr = "user.cordon.run."

// Prepare expands and resolves cfg and decides the mounts and Landlock rules that enforce
// it. With cfg.Mounts it creates, for each write-denied path that does not exist yet inside
// a writable tree, an empty read-only directory as a placeholder (the init helper mounts it
// read-only, so the command can neither create the path nor fill the placeholder); call
// Plan.Cleanup when the run is over, whatever happened.
func Prepare(cfg Config) (*Plan, error) {
	owner := cfg.Owner
	if owner == 0 {
		owner = os.Getpid()
	}
	p := &Plan{owner: owner}
	ok := false
	defer func() {
		if !ok {
			p.Cleanup()
		}
	}()

	var userGrants []Grant
	for _, d := range cfg.Read {
		if r, err := resolveExisting(d); err == nil {
			userGrants = append(userGrants, Grant{r, Read})
		}
	}
	for _, d := range cfg.Write {
		if r, err := resolveExisting(d); err == nil {
			userGrants = append(userGrants, Grant{r, Read | Write})
		}
	}
	for _, s := range cfg.UnixSockets {
		if r, err := resolveExisting(s); err == nil {
			userGrants = append(userGrants, Grant{r, ConnectUnix})
		}
	}
	p.Grants = append(userGrants, cfg.Grants...)
	for _, g := range userGrants {
		if isStrictlyUnder("/dev", g.Path) {
			p.Holes = append(p.Holes, Hole{Path: "/dev", Deny: devHoleDeny, AncestorDeny: devHoleAncestor, OnlyAncestors: true})
			break
		}
	}

	granted := func(path string, a Access) bool {
		for _, g := range p.Grants {
			if g.Access&a != 0 && isUnder(path, g.Path) {
				return true
			}
		}
		return false
	}

	denyRead, _, err := expandList(cfg.DenyRead, cfg)
	if err != nil {
		return nil, err
	}
	var masked []string
	for _, e := range denyRead {
		if !granted(e, All) {
			continue // not reachable anyway
		}
		if cfg.Mounts {
			kind := MaskFile
			if fi, err := os.Stat(e); err == nil && fi.IsDir() {
				kind = MaskDir
			}
			p.Mounts = append(p.Mounts, Mount{e, kind})
			masked = append(masked, e)
		} else {
			p.Holes = append(p.Holes, Hole{Path: e, Deny: readHoleDeny, AncestorDeny: readHoleAncestor})
		}
	}

	denyWrite, missing, err := expandList(cfg.DenyWrite, cfg)
	if err != nil {
		return nil, err
	}
	underMask := func(e string) bool {
		return slices.ContainsFunc(masked, func(m string) bool { return isUnder(e, m) })
	}
	var protected []string // read-only mount points, whose ancestors are pinned
	for _, e := range denyWrite {
		if !granted(e, Write) || underMask(e) {
			continue
		}
		if cfg.Mounts {
			if c, ok := p.adoptStale(e); ok {
				e = c
			}
			p.Mounts = append(p.Mounts, Mount{e, ReadOnly})
			protected = append(protected, e)
		} else {
			p.Holes = append(p.Holes, Hole{Path: e, Deny: writeHoleDeny, AncestorDeny: writeHoleAncestor})
		}
	}
	var uncovered []string
	for _, e := range missing {
		if underMask(e) {
			continue
		}
		anc, first := nearestExisting(e)
		if !granted(anc, Write) {
			continue // the command cannot create it
		}
		if cfg.Mounts && anc != "/" {
			if c, ok := p.adoptStale(anc); ok {
				// A placeholder left by an earlier run for a parent of this path.
				p.Mounts = append(p.Mounts, Mount{c, ReadOnly})
				protected = append(protected, c)
				continue
			}
		}
		if !cfg.Mounts {
			uncovered = append(uncovered, e)
			continue
		}
		if first != e {
			// The path's parent is missing too (.git/hooks without .git, say). A placeholder
			// for the parent would stand in the way of legitimate work (git init, an agent's
			// first .claude directory), so the path is watched instead: the supervisor warns
			// after the run if it was created.
			p.Watched = append(p.Watched, e)
			continue
		}
		made, err := p.makePlaceholder(first)
		if err != nil {
			return nil, err
		}
		if made {
			p.Mounts = append(p.Mounts, Mount{first, ReadOnly})
			protected = append(protected, first)
		}
	}
	if len(uncovered) > 0 {
		p.NotEnforced = append(p.NotEnforced, "write-deny of paths that do not exist yet (without a mount namespace their creation cannot be stopped): "+displayList(uncovered, cfg.Cwd))
	}
	// Pin every ancestor of a protected path that the command could rename, so that it
	// cannot move the parent of .git/config away and put a new one in its place.
	pinned := map[string]bool{}
	for _, e := range protected {
		for a := filepath.Dir(e); a != "/"; a = filepath.Dir(a) {
			if pinned[a] || !granted(filepath.Dir(a), Write) {
				continue
			}
			pinned[a] = true
			p.Mounts = append(p.Mounts, Mount{a, Pin})
		}
	}
	slices.SortStableFunc(p.Mounts, func(a, b Mount) int {
		if d := strings.Count(a.Path, "/") - strings.Count(b.Path, "/"); d != 0 {
			return d
		}
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return int(a.Kind) - int(b.Kind)
	})
	p.Mounts = slices.Compact(p.Mounts)
	p.Effects = carveEffects(p, cfg.Cwd)
	ok = true
	return p, nil
}

// expandList expands patterns and resolves symbolic links. It returns the existing paths
// and, separately, the literal paths that do not exist (patterns only match what exists).
func expandList(list []string, cfg Config) (existing, missing []string, err error) {
	add := func(dst *[]string, p string) {
		if !slices.Contains(*dst, p) {
			*dst = append(*dst, p)
		}
	}
	for _, pat := range list {
		if !IsPattern(pat) {
			r, err := resolveExisting(pat)
			if err == nil {
				add(&existing, r)
			} else {
				add(&missing, resolveMissing(pat))
			}
			continue
		}
		matches, err := Expand(pat, cfg.Cwd, cfg.MaxGlobEntries)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range matches {
			if r, err := resolveExisting(m); err == nil {
				add(&existing, r)
			}
		}
	}
	return existing, missing, nil
}

// resolveExisting resolves every symbolic link in an existing path.
func resolveExisting(p string) (string, error) {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	return filepath.Abs(r)
}

// resolveMissing resolves the existing part of a path that does not exist.
func resolveMissing(p string) string {
	anc, _ := nearestExisting(p)
	r, err := resolveExisting(anc)
	if err != nil {
		return p
	}
	rest := strings.TrimPrefix(p, anc)
	return filepath.Join(r, rest)
}

// nearestExisting returns the deepest existing ancestor of a missing path and the child of
// it on the way to the path (the first missing component).
func nearestExisting(p string) (anc, first string) {
	first = p
	for a := filepath.Dir(p); ; a = filepath.Dir(a) {
		if _, err := os.Lstat(a); err == nil || a == "/" {
			return a, first
		}
		first = a
	}
}

// placeholderIsFile reports whether a missing write-denied path is, by its name, a file
// (.mcp.json, settings.json, .bashrc, .git/config) rather than a directory (.vscode,
// .git/hooks): the placeholder takes the same type, so that other programs see what they
// expect while the run lasts.
func placeholderIsFile(path string) bool {
	base := filepath.Base(path)
	if strings.Contains(strings.TrimPrefix(base, "."), ".") {
		return true
	}
	switch base {
	case ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc",
		".zshenv", ".zprofile", ".zlogin", ".zlogout", ".kshrc", ".cshrc", ".tcshrc",
		".inputrc", ".gitconfig", ".gitmodules", ".envrc", "config":
		return true
	}
	return false
}

// makePlaceholder creates an empty, read-only file or directory at path, marked with this run's
// owner, and reports whether the path now needs protecting. A path that cannot be created
// (read-only filesystem, no permission) needs nothing: the command, running as the same
// user with fewer rights, cannot create it either.
func (p *Plan) makePlaceholder(path string) (bool, error) {
	var err error
	if placeholderIsFile(path) {
		var f *os.File
		f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err == nil {
			f.Close()
		}
	} else {
		err = os.Mkdir(path, 0o555)
	}
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return true, nil // appeared meanwhile: protect what is there
	case errors.Is(err, fs.ErrPermission), errors.Is(err, unix.EROFS):
		return false, nil
	default:
		return false, fmt.Errorf("create placeholder %s: %w", path, err)
	}
	p.Placeholders = append(p.Placeholders, path)
	// Best effort: on a filesystem without user xattrs a placeholder left behind by a killed
	// run stays until removed by hand (it is an empty directory).
	_ = unix.Setxattr(path, placeholderXattr+strconv.Itoa(p.owner), nil, 0)
	return true, nil
}

// adoptStale recognizes a placeholder at path left by another run: if every run that
// marked it is gone, it is kept and adopted (this run removes it at the end); if another
// run is still using it, this run adds its own mark so that the last one out removes it.
func (p *Plan) adoptStale(path string) (string, bool) {
	owners := placeholderOwners(path)
	if owners == nil {
		return "", false
	}
	if err := unix.Setxattr(path, placeholderXattr+strconv.Itoa(p.owner), nil, 0); err != nil {
		return "", false
	}
	p.Placeholders = append(p.Placeholders, path)
	return path, true
}

// placeholderOwners returns the run ids marked on an empty directory, or nil if path is
// not a placeholder.
func placeholderOwners(path string) []int {
	buf := make([]byte, 1024)
	n, err := unix.Listxattr(path, buf)
	if err != nil || n == 0 {
		return nil
	}
	var owners []int
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if id, ok := strings.CutPrefix(name, placeholderXattr); ok {
			if pid, err := strconv.Atoi(id); err == nil {
				owners = append(owners, pid)
			}
		}
	}
	if owners == nil {
		return nil
	}
	if fi, err := os.Lstat(path); err != nil {
		return nil
	} else if fi.Mode().IsRegular() {
		if fi.Size() > 0 {
			return nil
		}
	} else if entries, err := os.ReadDir(path); err != nil || len(entries) > 0 {
		return nil
	}
	return owners
}

func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Cleanup removes the placeholders this run created or adopted, unless another live run
// still uses them. It returns the placeholders it had to leave (not empty any more).
func (p *Plan) Cleanup() []string {
	var left []string
	for _, path := range p.Placeholders {
		_ = unix.Removexattr(path, placeholderXattr+strconv.Itoa(p.owner))
		inUse := false
		for _, o := range placeholderOwners(path) {
			if o != p.owner && alive(o) {
				inUse = true
			}
		}
		if inUse {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			left = append(left, path)
		}
	}
	p.Placeholders = nil
	return left
}

// carveEffects describes the directories that Landlock-only holes leave with fewer rights.
func carveEffects(p *Plan, cwd string) []string {
	var noWrite, noRead []string
	for _, h := range p.Holes {
		if h.OnlyAncestors {
			continue
		}
		for _, g := range p.Grants {
			if !isStrictlyUnder(h.Path, g.Path) || g.Access&h.AncestorDeny == 0 {
				continue
			}
			for a := filepath.Dir(h.Path); isUnder(a, g.Path); a = filepath.Dir(a) {
				if h.AncestorDeny&Write != 0 && g.Access&Write != 0 && !slices.Contains(noWrite, a) {
					noWrite = append(noWrite, a)
				}
				if h.AncestorDeny&ReadFiles != 0 && !slices.Contains(noRead, a) {
					noRead = append(noRead, a)
				}
				if a == "/" {
					break
				}
			}
		}
	}
	var out []string
	if len(noWrite) > 0 {
		slices.Sort(noWrite)
		out = append(out, "no file can be created, removed or renamed directly in "+displayList(noWrite, cwd)+" (each holds a write-denied path)")
	}
	if len(noRead) > 0 {
		slices.Sort(noRead)
		out = append(out, "files created during the run directly in "+displayList(noRead, cwd)+" cannot be read (each holds a read-denied path)")
	}
	return out
}

// displayList joins paths for a message, those under cwd relative to it ("." for cwd).
func displayList(paths []string, cwd string) string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = p
		if cwd != "" && isUnder(p, cwd) {
			if r, err := filepath.Rel(cwd, p); err == nil {
				out[i] = r
			}
		}
	}
	return strings.Join(out, ", ")
}

// Created returns the watched paths that exist now: write-denied paths the run created
// because their parent did not exist when it started.
func (p *Plan) Created() []string {
	var out []string
	for _, path := range p.Watched {
		if _, err := os.Lstat(path); err == nil {
			out = append(out, path)
		}
	}
	return out
}
