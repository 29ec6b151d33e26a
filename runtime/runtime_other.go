//go:build !linux && !darwin

package runtime

import (
	"context"
	"fmt"
	goruntime "runtime"
)

func run(ctx context.Context, cfg Config) (*Result, error) {
	return nil, fmt.Errorf("%w: the sandbox for %s is not built yet; refusing to run the command unconfined", ErrUnsupported, goruntime.GOOS)
}

func maybeInit() {}

func probe() Support { return Support{Arch: goruntime.GOARCH} }
