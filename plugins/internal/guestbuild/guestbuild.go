// Package guestbuild builds Go plugin sources into WebAssembly modules, for tests.
package guestbuild

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles the Go main package in dir into the plugin module out, the way
// docs/plugins.md tells plugin authors to:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o out .
func Build(ctx context.Context, dir, out string) error {
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); os.Getenv("GOROOT") == "" || err != nil {
		goBin = "go"
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("build %s: %v\n%s", dir, err, strings.TrimSpace(string(b)))
	}
	return nil
}
