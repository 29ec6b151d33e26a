//go:build !darwin

package fsjail

// canonicalExisting resolves an existing path's symbolic links.
func canonicalExisting(p string) (string, bool) { return evalExisting(p) }
