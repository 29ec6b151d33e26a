package fsjail

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// ABI returns the Landlock ABI version of the running kernel, 0 if Landlock is missing or
// disabled. A kernel whose signal scoping has a known bug (fixed by erratum 2) counts as
// version 5, as go-landlock does.
func ABI() int {
	v, err := ll.LandlockGetABIVersion()
	if err != nil || v < 1 {
		return 0
	}
	if v >= 6 {
		if errata, err := ll.LandlockGetErrata(); err != nil || errata&0x2 == 0 {
			v = 5
		}
	}
	return v
}

// NetRules are the network and scoping parts of the Landlock ruleset.
type NetRules struct {
	// RestrictConnect limits TCP connect(2) to ConnectPorts (Landlock ABI 4).
	RestrictConnect bool
	ConnectPorts    []uint16
	// RestrictBind limits TCP bind(2) to BindPorts (Landlock ABI 4).
	RestrictBind bool
	BindPorts    []uint16
	// Scope keeps signals and abstract unix sockets inside the sandbox (Landlock ABI 6).
	Scope bool
}

// The Landlock rights of each Access bit.
const (
	llReadFiles = ll.AccessFSReadFile | ll.AccessFSExecute
	llListDirs  = ll.AccessFSReadDir
	llWrite     = ll.AccessFSWriteFile | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile |
		ll.AccessFSMakeChar | ll.AccessFSMakeDir | ll.AccessFSMakeReg | ll.AccessFSMakeSock |
		ll.AccessFSMakeFifo | ll.AccessFSMakeBlock | ll.AccessFSMakeSym | ll.AccessFSRefer |
		ll.AccessFSTruncate
	llIoctl   = ll.AccessFSIoctlDev
	llConnect = ll.AccessFSResolveUnix
	// The rights that apply to a file rather than a directory.
	llFile = ll.AccessFSExecute | ll.AccessFSWriteFile | ll.AccessFSReadFile |
		ll.AccessFSTruncate | ll.AccessFSIoctlDev | ll.AccessFSResolveUnix
)

// handledFS returns the filesystem rights the kernel's ABI knows.
func handledFS(abi int) uint64 {
	var h uint64 = (1 << 13) - 1 // ABI 1
	if abi >= 2 {
		h |= ll.AccessFSRefer
	}
	if abi >= 3 {
		h |= ll.AccessFSTruncate
	}
	if abi >= 5 {
		h |= ll.AccessFSIoctlDev
	}
	if abi >= 9 {
		h |= ll.AccessFSResolveUnix
	}
	return h
}

func (a Access) landlock() uint64 {
	var r uint64
	if a&ReadFiles != 0 {
		r |= llReadFiles
	}
	if a&ListDirs != 0 {
		r |= llListDirs
	}
	if a&Write != 0 {
		r |= llWrite
	}
	if a&Ioctl != 0 {
		r |= llIoctl
	}
	if a&ConnectUnix != 0 {
		r |= llConnect
	}
	return r
}

// Restrict applies the plan's grants and holes, and net, as a Landlock ruleset on the
// calling thread only; the caller locks its goroutine to the thread, sets no_new_privs (or
// holds CAP_SYS_ADMIN in its user namespace) and starts the command from that thread.
// It fails with ErrNoLandlock without Landlock, and with an error if net asks for rules the
// kernel's ABI lacks (the runtime checks ABI first and decides about best effort).
func (p *Plan) Restrict(net NetRules) error {
	abi := ABI()
	if abi == 0 {
		return ErrNoLandlock
	}
	attr := ll.RulesetAttr{HandledAccessFS: handledFS(abi)}
	if net.RestrictConnect || net.RestrictBind {
		if abi < 4 {
			return fmt.Errorf("landlock ABI %d has no TCP rules (4 needed)", abi)
		}
		if net.RestrictConnect {
			attr.HandledAccessNet |= ll.AccessNetConnectTCP
		}
		if net.RestrictBind {
			attr.HandledAccessNet |= ll.AccessNetBindTCP
		}
	}
	if net.Scope {
		if abi < 6 {
			return fmt.Errorf("landlock ABI %d has no scoping (6 needed)", abi)
		}
		attr.Scoped = ll.ScopeAbstractUnixSocket | ll.ScopeSignal
	}
	fd, err := ll.LandlockCreateRuleset(&attr, 0)
	if err != nil {
		return fmt.Errorf("landlock_create_ruleset: %w", err)
	}
	defer unix.Close(fd)

	rules, err := p.rules()
	if err != nil {
		return err
	}
	for _, r := range rules {
		if err := addPathRule(fd, r.path, r.access&attr.HandledAccessFS); err != nil {
			return err
		}
	}
	for _, port := range net.ConnectPorts {
		if err := ll.LandlockAddNetPortRule(fd, &ll.NetPortAttr{AllowedAccess: ll.AccessNetConnectTCP, Port: uint64(port)}, 0); err != nil {
			return fmt.Errorf("landlock: allow connect to port %d: %w", port, err)
		}
	}
	for _, port := range net.BindPorts {
		if err := ll.LandlockAddNetPortRule(fd, &ll.NetPortAttr{AllowedAccess: ll.AccessNetBindTCP, Port: uint64(port)}, 0); err != nil {
			return fmt.Errorf("landlock: allow bind to port %d: %w", port, err)
		}
	}
	if err := ll.LandlockRestrictSelf(fd, 0); err != nil {
		return fmt.Errorf("landlock_restrict_self: %w", err)
	}
	return nil
}

type rule struct {
	path   string
	access uint64
}

// rules turns grants and holes into path-beneath rules. A grant without a hole beneath it is
// one rule. A grant with holes beneath it is carved: each directory on the way from the
// grant down to a hole gets only the rights that cannot reach the hole, and every other
// entry of those directories gets the grant's full rights.
func (p *Plan) rules() ([]rule, error) {
	var out []rule
	for _, g := range p.Grants {
		a := g.Access
		var below []Hole
		for _, h := range p.Holes {
			switch {
			case isStrictlyUnder(h.Path, g.Path):
				below = append(below, h)
			case isUnder(g.Path, h.Path) && !h.OnlyAncestors:
				a &^= h.Deny // deny beats allow
			}
		}
		if len(below) == 0 {
			out = append(out, rule{g.Path, a.landlock()})
			continue
		}
		if err := carve(g.Path, a, below, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func carve(dir string, a Access, holes []Hole, out *[]rule) error {
	var ancDeny Access
	for _, h := range holes {
		ancDeny |= h.AncestorDeny
	}
	*out = append(*out, rule{dir, (a &^ ancDeny).landlock()})
	entries, err := os.ReadDir(dir)
	if err != nil {
		// Unlistable: its entries keep the reduced rights, which is the safe side.
		return nil
	}
	for _, e := range entries {
		child := filepath.Join(dir, e.Name())
		own := a
		var deeper []Hole
		for _, h := range holes {
			switch {
			case h.Path == child:
				own &^= h.Deny
			case isStrictlyUnder(h.Path, child):
				deeper = append(deeper, h)
			}
		}
		if len(deeper) > 0 && e.IsDir() {
			if err := carve(child, own, deeper, out); err != nil {
				return err
			}
			continue
		}
		if e.Type()&os.ModeSymlink != 0 {
			continue // reached through its target's own rules
		}
		*out = append(*out, rule{child, own.landlock()})
	}
	return nil
}

// addPathRule adds one path-beneath rule, opening the path without following a final
// symbolic link and keeping only the rights that apply to what it is.
func addPathRule(rulesetFD int, path string, access uint64) error {
	if access == 0 {
		return nil
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) {
			return nil // gone, or hidden by a mask: nothing to grant
		}
		return &os.PathError{Op: "landlock: open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "landlock: stat", Path: path, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
	case unix.S_IFLNK:
		return nil
	default:
		access &= llFile
	}
	if access == 0 {
		return nil
	}
	err = ll.LandlockAddPathBeneathRule(rulesetFD, &ll.PathBeneathAttr{ParentFd: fd, AllowedAccess: access}, 0)
	if errors.Is(err, unix.EINVAL) && access&llConnect != 0 {
		// A kernel that does not count "resolve unix" as a file right.
		err = ll.LandlockAddPathBeneathRule(rulesetFD, &ll.PathBeneathAttr{ParentFd: fd, AllowedAccess: access &^ llConnect}, 0)
	}
	if err != nil {
		return &os.PathError{Op: "landlock_add_rule", Path: path, Err: err}
	}
	return nil
}
