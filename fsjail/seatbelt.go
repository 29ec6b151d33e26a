package fsjail

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// This file writes the file rules of a macOS Seatbelt profile (the language sandbox-exec
// reads, SBPL). It is plain Go without build tags, so that it is tested on every platform;
// docs/macos.md says what is tested only this way.
//
// SBPL facts this file relies on:
//   - A profile is read by a TinyScheme reader. In a string literal, backslash escapes the
//     next character ("\\" is a backslash, "\"" a quote); every other byte stands for itself,
//     newlines and non-ASCII bytes included. QuoteSBPL writes only those two escapes, which
//     every TinyScheme version reads the same way.
//   - Rules are decided last to first: a later rule overrides an earlier one for the same
//     operation. The file rules therefore list grants first and denials last, so that deny
//     beats allow, as on Linux.
//   - Several filters in one rule match if any matches. (literal P) matches P itself,
//     (subpath P) P and everything beneath it, (regex R) a POSIX extended regular expression
//     on the whole path.
//   - The kernel checks a path after resolving every symbolic link in it (/tmp/x is checked
//     as /private/tmp/x), and checks the metadata of each directory on the way, the
//     symbolic links among them.
//   - (with message "TAG") on a deny rule appends TAG to the report of a denial in the
//     unified log, which is how cordon finds the denials of one run.

// SeatbeltConfig is the file part of a policy, for a Seatbelt profile.
type SeatbeltConfig struct {
	// Config gives the paths: Read, Write, DenyRead, DenyWrite (with the built-in list), the
	// runtime's Grants, Cwd and MaxGlobEntries. UnixSockets and Mounts are not used here (the
	// network part of the profile allows unix sockets; macOS has no mount namespaces).
	Config
	// Tag is the message of every deny rule: a per-run string of letters, digits, '-', '_'
	// and '.', at most 64 bytes. Required.
	Tag string
	// Resolve returns the spelling under which the kernel checks a path: every symbolic link
	// in its existing part resolved, the part that does not exist yet appended. Defaults to
	// ResolvePath.
	Resolve func(path string) string
	// Expand returns the existing paths a pattern matches when the run starts (see Expand).
	// Defaults to Expand.
	Expand func(pattern, cwd string, limit int) ([]string, error)
}

// The operations granted and denied for each kind of right. Reading includes mapping a file
// as code and executing it, so that a path the command cannot read cannot be run either.
// process-exec* covers executing a file directly and as the interpreter of a script.
var (
	sbRead   = []string{"file-read*", "file-map-executable", "process-exec*"}
	sbList   = []string{"file-read*"}
	sbWrite  = []string{"file-write*"}
	sbIoctl  = []string{"file-ioctl"}
	sbDenyRd = []string{"file-read*", "file-map-executable", "process-exec*"}
	sbDenyWr = []string{"file-write*"}
	sbAll    = []string{"file-read*", "file-write*", "file-ioctl", "file-map-executable", "process-exec*"}
)

// SystemGrants are what every process on macOS needs to start and to run basic library
// code, granted whatever the policy says: the dynamic loader, the system libraries and
// frameworks and their shared cache, the time zone database, and the usual devices. A
// grant of / in the policy already covers the files; a narrower policy still lets programs
// start.
var SystemGrants = []Grant{
	{Path: "/usr/lib", Access: Read},
	{Path: "/System/Library/Frameworks", Access: Read},
	{Path: "/System/Library/PrivateFrameworks", Access: Read},
	{Path: "/System/Library/dyld", Access: Read},
	{Path: "/System/Volumes/Preboot/Cryptexes", Access: Read},
	{Path: "/System/Cryptexes", Access: Read},
	{Path: "/private/var/db/dyld", Access: Read},
	{Path: "/System/Library/CoreServices/SystemVersion.plist", Access: Read},
	{Path: "/private/var/db/timezone", Access: Read},
	{Path: "/etc/localtime", Access: Read},
	{Path: "/dev", Access: ListDirs},
	{Path: "/dev/null", Access: Read | Write | Ioctl},
	{Path: "/dev/zero", Access: Read | Write | Ioctl},
	{Path: "/dev/random", Access: Read},
	{Path: "/dev/urandom", Access: Read},
	{Path: "/dev/tty", Access: Read | Write | Ioctl},
	{Path: "/dev/fd", Access: Read | Write},
	// dyld registers a program's static probes with DTrace through this device.
	{Path: "/dev/dtracehelper", Access: Read | Write | Ioctl},
}

// SeatbeltRules returns the file rules of a Seatbelt profile for cfg: what is granted, then
// the /dev rule, then everything denied. Denied paths are matched in every spelling the
// kernel may use (the path as given and as resolved, and, because macOS volumes are
// usually case-insensitive, with ASCII letters in either case), and the rules cover paths
// created during the run too. A denied path, and every directory above it, cannot be
// renamed or removed, so that it cannot be moved out from under its rule. Hard links and
// clones cannot be made at all: Seatbelt cannot tell a link to a denied file from another.
func SeatbeltRules(cfg SeatbeltConfig) (string, error) {
	if err := checkTag(cfg.Tag); err != nil {
		return "", err
	}
	if cfg.Resolve == nil {
		cfg.Resolve = ResolvePath
	}
	if cfg.Expand == nil {
		cfg.Expand = Expand
	}
	g := &sbGen{cfg: cfg}
	if err := g.generate(); err != nil {
		return "", err
	}
	return g.out.String(), nil
}

type sbGen struct {
	cfg SeatbeltConfig
	out strings.Builder
	// traverse are the directories (and symbolic links) whose metadata the command needs
	// to reach the granted paths.
	traverse []string
}

func (g *sbGen) generate() error {
	type grant struct {
		path   string
		access Access
	}
	var user, devs, implicit []grant
	var carveDev bool
	for _, list := range []struct {
		paths  []string
		access Access
	}{{g.cfg.Read, Read}, {g.cfg.Write, Read | Write}} {
		for _, p := range list.paths {
			r, err := g.grantPath(p)
			if err != nil {
				return err
			}
			if isStrictlyUnder("/dev", r) {
				carveDev = true
			}
			if isStrictlyUnder(r, "/dev") {
				devs = append(devs, grant{r, list.access})
			} else {
				user = append(user, grant{r, list.access})
			}
		}
	}
	for _, gr := range append(slices.Clone(SystemGrants), g.cfg.Grants...) {
		r, err := g.grantPath(gr.Path)
		if err != nil {
			return err
		}
		implicit = append(implicit, grant{r, gr.Access})
	}
	emitGrants := func(comment string, list []grant) error {
		byOps := map[string][]string{}
		var order []string
		add := func(ops []string, filter string) {
			k := strings.Join(ops, " ")
			if _, ok := byOps[k]; !ok {
				order = append(order, k)
			}
			if !slices.Contains(byOps[k], filter) {
				byOps[k] = append(byOps[k], filter)
			}
		}
		for _, gr := range list {
			sub, err := filterForm("subpath", gr.path)
			if err != nil {
				return err
			}
			lit, err := filterForm("literal", gr.path)
			if err != nil {
				return err
			}
			switch {
			case gr.access&ReadFiles != 0:
				add(sbRead, sub)
			case gr.access&ListDirs != 0:
				add(sbList, lit)
			}
			if gr.access&Write != 0 {
				add(sbWrite, sub)
			}
			if gr.access&Ioctl != 0 {
				add(sbIoctl, sub)
			}
		}
		if len(order) == 0 {
			return nil
		}
		g.comment(comment)
		for _, k := range order {
			g.rule("allow", strings.Fields(k), byOps[k], false)
		}
		return nil
	}
	if err := emitGrants("files: allow_read and allow_write", user); err != nil {
		return err
	}
	if carveDev {
		// Below /dev only the devices granted by name count: a raw disk readable by the
		// caller would bypass every other rule.
		dev, _ := filterForm("subpath", "/dev")
		g.comment("files: /dev is never granted wholesale")
		g.rule("deny", sbAll, []string{dev}, true)
	}
	if err := emitGrants("files: granted to every run", implicit); err != nil {
		return err
	}
	if err := emitGrants("files: devices named in the policy", devs); err != nil {
		return err
	}
	if err := g.emitTraversal(); err != nil {
		return err
	}
	return g.emitDenials()
}

// grantPath resolves a granted path and records the directories the command needs to pass
// through to reach it, in both spellings.
func (g *sbGen) grantPath(p string) (string, error) {
	if err := checkPath(p); err != nil {
		return "", err
	}
	r := g.cfg.Resolve(p)
	if err := checkPath(r); err != nil {
		return "", err
	}
	// The path as given, as resolved, and with only its parent resolved: the directories
	// and symbolic links the kernel passes through on the way.
	viaParent := p
	if p != "/" {
		viaParent = filepath.Join(g.cfg.Resolve(filepath.Dir(p)), filepath.Base(p))
	}
	for _, s := range []string{p, viaParent, r} {
		for a := s; a != "/"; {
			a = filepath.Dir(a)
			g.traverse = append(g.traverse, a)
		}
		if s != r {
			g.traverse = append(g.traverse, s) // a symbolic link
		}
	}
	return r, nil
}

func (g *sbGen) emitTraversal() error {
	slices.Sort(g.traverse)
	g.traverse = slices.Compact(g.traverse)
	var filters []string
	for _, t := range g.traverse {
		f, err := filterForm("literal", t)
		if err != nil {
			return err
		}
		filters = append(filters, f)
	}
	if len(filters) > 0 {
		g.comment("files: the metadata of the directories above granted paths")
		g.rule("allow", []string{"file-read-metadata"}, filters, false)
	}
	return nil
}

// denial is the set of filters of one kind of deny rule, in the order first added.
type denial struct {
	filters []string
	seen    map[string]bool
}

func (d *denial) add(fs ...string) {
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	for _, f := range fs {
		if !d.seen[f] {
			d.seen[f] = true
			d.filters = append(d.filters, f)
		}
	}
}

func (g *sbGen) emitDenials() error {
	var read, write, readMoves, writeAbove denial
	for _, p := range g.cfg.DenyRead {
		trees, above, err := g.denyFilters(p)
		if err != nil {
			return err
		}
		read.add(trees...)
		readMoves.add(trees...)
		readMoves.add(above...)
	}
	for _, p := range g.cfg.DenyWrite {
		trees, above, err := g.denyFilters(p)
		if err != nil {
			return err
		}
		write.add(trees...)
		writeAbove.add(above...)
	}
	if len(read.filters) > 0 {
		g.comment("files: deny_read")
		g.rule("deny", sbDenyRd, read.filters, true)
	}
	if len(write.filters) > 0 {
		g.comment("files: deny_write and the built-in write-deny list")
		g.rule("deny", sbDenyWr, write.filters, true)
	}
	if len(readMoves.filters) > 0 {
		g.comment("files: a read-denied path, or a directory above it, cannot be renamed or removed")
		g.rule("deny", []string{"file-write-unlink"}, readMoves.filters, true)
	}
	if len(writeAbove.filters) > 0 {
		g.comment("files: a directory above a write-denied path cannot be renamed or removed")
		g.rule("deny", []string{"file-write-unlink"}, writeAbove.filters, true)
		// One that does not exist yet may be created (git init makes .git), but not as a
		// symbolic link to a directory the command may write, where the denied path would
		// then be written. (A directory moved into its place is not stopped; the runtime
		// warns about write-denied paths that a run created.)
		g.comment("files: a directory above a write-denied path cannot be created as a symbolic link")
		symlinks := "(require-all\n        (vnode-type SYMLINK)\n        (require-any\n            " +
			strings.Join(writeAbove.filters, "\n            ") + "))"
		g.rule("deny", []string{"file-write-create"}, []string{symlinks}, true)
	}
	g.comment("files: no hard links or clones, which would give a denied file a name outside its rule")
	g.rule("deny", []string{"file-link", "file-clone"}, nil, true)
	return nil
}

// denyFilters returns the filters that match a denied path (or pattern) and everything
// beneath it, and those that match the directories above it.
func (g *sbGen) denyFilters(p string) (trees, ancestors []string, err error) {
	if err := checkPath(p); err != nil {
		return nil, nil, err
	}
	var literal []string // denied trees, as paths
	var above []string   // directories above them
	if IsPattern(p) {
		prefix, rest, err := splitPattern(p)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range spellings(prefix, g.cfg.Resolve(prefix)) {
			res, err := globRegexes(s, rest)
			if err != nil {
				return nil, nil, err
			}
			for _, re := range res {
				f, err := filterForm("regex", re)
				if err != nil {
					return nil, nil, err
				}
				trees = append(trees, f)
			}
			// Moving the pattern's fixed directory, or one above it, would take every
			// match along.
			above = append(above, s)
			above = append(above, ancestorsOf(s)...)
		}
		// The paths the pattern matches now also get rules of their own, in their
		// resolved spelling: a match reached through a symbolic link is checked where the
		// link points.
		matches, err := g.cfg.Expand(p, g.cfg.Cwd, g.cfg.MaxGlobEntries)
		switch {
		case errors.Is(err, ErrGlobTooBroad):
			// The regular expressions above match wherever the files are; only matches
			// through symbolic links would need the expansion.
		case err != nil:
			return nil, nil, err
		}
		for _, m := range matches {
			r := g.cfg.Resolve(m)
			if err := checkPath(r); err != nil {
				return nil, nil, err
			}
			literal = append(literal, r)
			above = append(above, ancestorsOf(r)...)
			above = append(above, ancestorsOf(m)...)
		}
	} else {
		for _, s := range spellings(p, g.cfg.Resolve(p)) {
			literal = append(literal, s)
			above = append(above, ancestorsOf(s)...)
		}
	}
	for _, s := range literal {
		sub, err := filterForm("subpath", s)
		if err != nil {
			return nil, nil, err
		}
		trees = append(trees, sub)
		f, err := filterForm("regex", "^"+regexLiteral(s, true)+treeSuffix)
		if err != nil {
			return nil, nil, err
		}
		trees = append(trees, f)
	}
	for _, a := range above {
		lit, err := filterForm("literal", a)
		if err != nil {
			return nil, nil, err
		}
		re, err := filterForm("regex", "^"+regexLiteral(a, true)+"$")
		if err != nil {
			return nil, nil, err
		}
		ancestors = append(ancestors, lit, re)
	}
	return trees, ancestors, nil
}

// spellings returns a path as given and as resolved, once each.
func spellings(given, resolved string) []string {
	if given == resolved {
		return []string{given}
	}
	return []string{resolved, given}
}

// ancestorsOf returns the directories above p, nearest first, without "/".
func ancestorsOf(p string) []string {
	var out []string
	for a := filepath.Dir(p); a != "/" && a != "."; a = filepath.Dir(a) {
		out = append(out, a)
	}
	return out
}

// splitPattern splits an absolute pattern into its fixed directory (the components before
// the first one with a pattern character) and the components after it, with repeated "**"
// collapsed.
func splitPattern(p string) (prefix string, rest []string, err error) {
	comps := splitPath(filepath.Clean(p))
	fixed := 0
	for fixed < len(comps) && !IsPattern(comps[fixed]) {
		fixed++
	}
	for _, c := range comps[fixed:] {
		if c == "**" {
			if len(rest) > 0 && rest[len(rest)-1] == "**" {
				continue
			}
		} else if strings.Contains(c, "**") {
			return "", nil, fmt.Errorf("%w: %q: \"**\" must be a whole path component", ErrBadPattern, p)
		} else if _, err := filepath.Match(c, ""); err != nil {
			return "", nil, fmt.Errorf("%w: %q: %v", ErrBadPattern, p, err)
		}
		rest = append(rest, c)
	}
	return "/" + strings.Join(comps[:fixed], "/"), rest, nil
}

// rule writes one rule, with the run's tag if it denies. A rule without filters applies to
// every path: callers pass none only for the rule that denies hard links and clones.
func (g *sbGen) rule(action string, ops, filters []string, tagged bool) {
	g.out.WriteString("(" + action + " " + strings.Join(ops, " "))
	for _, f := range filters {
		g.out.WriteString("\n    " + f)
	}
	if tagged {
		g.out.WriteString("\n    (with message " + QuoteSBPL(g.cfg.Tag) + ")")
	}
	g.out.WriteString(")\n")
}

// comment writes a comment line; comments never hold anything from the policy, whose
// paths could end a comment with a newline.
func (g *sbGen) comment(text string) { g.out.WriteString("; " + text + "\n") }

// filterForm writes (kind "value").
func filterForm(kind, value string) (string, error) {
	if strings.IndexByte(value, 0) >= 0 {
		return "", fmt.Errorf("%w: %q holds a NUL byte", ErrBadPath, value)
	}
	return "(" + kind + " " + QuoteSBPL(value) + ")", nil
}

// checkPath accepts absolute, clean paths without NUL bytes.
func checkPath(p string) error {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%w: %q holds a NUL byte", ErrBadPath, p)
	case !filepath.IsAbs(p):
		return fmt.Errorf("%w: %q is not absolute", ErrBadPath, p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("%w: %q is not clean", ErrBadPath, p)
	}
	return nil
}

// checkTag accepts a deny message that needs no escaping anywhere it goes (the profile,
// the log predicate).
func checkTag(tag string) error {
	if tag == "" || len(tag) > 64 {
		return fmt.Errorf("%w: tag %q must be 1 to 64 bytes", ErrBadPath, tag)
	}
	for _, c := range []byte(tag) {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("%w: tag %q may hold only letters, digits, '-', '_' and '.'", ErrBadPath, tag)
		}
	}
	return nil
}

// QuoteSBPL returns s as an SBPL string literal: in double quotes, with backslashes and
// double quotes escaped by a backslash and every other byte as it is. The reader turns the
// literal back into exactly s; nothing in s can end the literal early. s must not hold a NUL
// byte (the profile is a C string).
func QuoteSBPL(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '"' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// treeSuffix ends an expression that matches a path and everything beneath it.
const treeSuffix = "(/|$)"

// regexMeta are the bytes that a POSIX extended regular expression gives a meaning.
const regexMeta = `.[]()*+?{}|^$\`

// regexLiteral returns a regular expression that matches s exactly: metacharacters are
// escaped with a backslash and, with fold, each ASCII letter matches in either case.
// Other bytes, non-ASCII ones included, stand for themselves.
func regexLiteral(s string, fold bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		writeRegexByte(&b, s[i], fold)
	}
	return b.String()
}

func writeRegexByte(b *strings.Builder, c byte, fold bool) {
	switch {
	case fold && isLetter(c):
		b.WriteByte('[')
		b.WriteByte(lower(c))
		b.WriteByte(upper(c))
		b.WriteByte(']')
	case strings.IndexByte(regexMeta, c) >= 0:
		b.WriteByte('\\')
		b.WriteByte(c)
	default:
		b.WriteByte(c)
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool  { return isLetter(c) || isDigit(c) }
func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}
