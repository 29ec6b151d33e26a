package policy

import (
	"errors"
	"fmt"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalid is wrapped by every error that is a problem with a policy's contents.
	ErrInvalid = errors.New("invalid policy")
	// ErrNoPreset is wrapped when a preset name is not known.
	ErrNoPreset = errors.New("no such preset")
)

// Error is a problem found in one policy source. It names the source, the line (when known)
// and the key, so that a user can go straight to it.
type Error struct {
	File string // the policy file, "preset NAME" or "flags"
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based; 0 when unknown
	Key  string // dotted key such as "network.allow"; "" when the problem is not one key's
	Msg  string
	Err  error // the underlying error, if any
}

func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += fmt.Sprintf(":%d", e.Line)
		if e.Col > 0 {
			s += fmt.Sprintf(":%d", e.Col)
		}
	}
	if e.Key != "" {
		s += ": " + e.Key
	}
	return s + ": " + e.Msg
}

// Unwrap returns ErrInvalid and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}
