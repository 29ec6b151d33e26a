// Package fsjail confines a command's view of the filesystem on Linux: Landlock rules for
// what it may read and write, and, where a mount namespace is available, mounts that mask
// denied paths inside readable trees and keep write-denied paths read-only inside writable
// ones.
//
// The work is split between two processes. [Prepare] runs in cordon's supervisor: it expands
// globs, resolves symbolic links, decides every mount and Landlock rule, and creates the
// placeholders that stand in for write-denied paths that do not exist yet. The result, a
// [Plan], is plain data; the in-sandbox init helper applies it with [Plan.Mount] (in its new
// mount namespace) and [Plan.Restrict] (Landlock). [Plan.Cleanup] removes the placeholders
// when the run is over.
package fsjail

// Access is a set of rights on a tree of the filesystem.
type Access uint8

// The rights. Landlock's finer rights are grouped into these.
const (
	// ReadFiles is reading and executing files.
	ReadFiles Access = 1 << iota
	// ListDirs is listing directories.
	ListDirs
	// Write is creating, changing, truncating, renaming and deleting files and directories.
	Write
	// Ioctl is ioctl(2) on devices (terminals).
	Ioctl
	// ConnectUnix is connecting to pathname unix sockets (Landlock ABI 9 and later).
	ConnectUnix

	// Read is ReadFiles and ListDirs.
	Read = ReadFiles | ListDirs
	// All is every right.
	All = Read | Write | Ioctl | ConnectUnix
)

// Config is the filesystem part of a policy. Paths are absolute and clean.
type Config struct {
	// Read lists the trees the command may read and execute. Defaults to none.
	Read []string
	// Write lists the trees the command may read and change. Defaults to none.
	Write []string
	// DenyRead lists paths hidden inside Read and Write trees, or glob patterns ("*", "?",
	// "[...]" within a name, "**" for any number of directories) expanded when the run
	// starts. Defaults to none.
	DenyRead []string
	// DenyWrite lists paths (or patterns) that stay read-only inside Write trees, including
	// paths that do not exist yet. Defaults to none.
	DenyWrite []string
	// Grants are rights added by the runtime (devices, the private temp dir, /proc); they
	// are not subject to the /dev rule below. Defaults to none.
	Grants []Grant
	// UnixSockets lists pathname unix sockets the command may connect to. Defaults to none.
	UnixSockets []string
	// Cwd is the working directory: a "**" pattern whose fixed part is an ancestor of Cwd is
	// expanded under Cwd only. Required if a pattern has "**".
	Cwd string
	// Mounts says a mount namespace is available: denied reads are masked with mounts,
	// write-denied paths are bind-mounted read-only, and missing write-denied paths get
	// placeholders. Without it every denial is expressed in Landlock rules alone.
	// Defaults to false.
	Mounts bool
	// MaxGlobEntries bounds the directory entries a pattern may examine; beyond it Prepare
	// fails with ErrGlobTooBroad. Defaults to 200000.
	MaxGlobEntries int
	// Owner is an identifier of this run (the supervisor's pid) recorded on placeholders, so
	// that one left behind by a killed run can be recognized and removed. Defaults to the
	// process id.
	Owner int
}

// Grant gives rights on a path and everything beneath it.
type Grant struct {
	Path   string `json:"p"`
	Access Access `json:"a"`
}

// Hole takes rights away from a path inside a granted tree. Landlock can only grant, so a
// hole is made by granting the siblings of the path and of each of its ancestors instead of
// the tree, and granting the ancestors themselves only what cannot reach the hole.
type Hole struct {
	Path string `json:"p"`
	// Deny is taken from the path and everything beneath it.
	Deny Access `json:"d"`
	// AncestorDeny is taken from each ancestor of the path inside the granted tree.
	AncestorDeny Access `json:"ad"`
	// OnlyAncestors says the hole carves only grants above it; grants at or beneath it are
	// kept whole (the /dev hole, below which the runtime grants single devices).
	OnlyAncestors bool `json:"oa,omitempty"`
}

// MountKind is what a Mount does.
type MountKind uint8

// The mount kinds, in the order they are applied at the same path.
const (
	// Pin bind-mounts a directory onto itself, so that it cannot be renamed or removed: a
	// write-denied path cannot be swapped out by moving its parent away.
	Pin MountKind = iota + 1
	// ReadOnly bind-mounts a path onto itself read-only.
	ReadOnly
	// MaskDir mounts an empty, unreadable, read-only directory over a directory.
	MaskDir
	// MaskFile mounts an empty, unreadable, read-only file over a file.
	MaskFile
)

// Mount is one mount the init helper makes in the sandbox's mount namespace.
type Mount struct {
	Path string    `json:"p"`
	Kind MountKind `json:"k"`
}

// Plan is what Prepare decided, for the init helper to apply.
type Plan struct {
	// Mounts are applied in order (parents before children). Empty without Config.Mounts.
	Mounts []Mount `json:"mounts,omitempty"`
	// Grants and Holes become Landlock rules.
	Grants []Grant `json:"grants,omitempty"`
	Holes  []Hole  `json:"holes,omitempty"`
	// Placeholders are the empty files and directories Prepare created for missing
	// write-denied paths; Cleanup removes them.
	Placeholders []string `json:"placeholders,omitempty"`
	// Watched are missing write-denied paths whose parent is missing too: no placeholder
	// stands in for them, and [Plan.Created] tells which of them the run created.
	Watched []string `json:"-"`
	// NotEnforced names, for the user, the parts of the Config that this plan cannot enforce.
	NotEnforced []string `json:"-"`
	// Effects names side effects of the plan the user should know about, such as
	// directories that accept no new files because a path beneath them is denied.
	Effects []string `json:"-"`

	owner int
}
