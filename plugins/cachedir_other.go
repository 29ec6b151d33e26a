//go:build !unix

package plugins

import (
	"errors"
	"os"
)

// checkCacheDir checks that dir is a directory; ownership is not checked on this platform.
func checkCacheDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return errors.New("not a directory")
	}
	return nil
}
