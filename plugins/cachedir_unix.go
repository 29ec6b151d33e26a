//go:build unix

package plugins

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// checkCacheDir refuses a compilation cache directory that another user could write to: the
// cache holds native code that cordon runs.
func checkCacheDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return errors.New("not a directory")
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("owned by uid %d, not by the user running cordon (uid %d)", sys.Uid, os.Geteuid())
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("writable by group or others (mode %v); chmod 700 it", st.Mode().Perm())
	}
	return nil
}
