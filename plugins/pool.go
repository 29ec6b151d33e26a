package plugins

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// pool holds a plugin's idle instances and bounds how many exist at once. An instance is
// used by one call at a time; one that failed is closed, never returned.
type pool struct {
	p     *Plugin
	idle  chan *instance
	slots chan struct{} // one token per live instance
	done  chan struct{} // closed by close

	mu     sync.Mutex
	closed bool
}

func newPool(p *Plugin, max int) *pool {
	return &pool{p: p, idle: make(chan *instance, max), slots: make(chan struct{}, max), done: make(chan struct{})}
}

// get returns an idle instance, or starts a new one if fewer than the maximum exist, or waits
// for one until ctx is done. Errors are ready to return from Apply.
func (pl *pool) get(ctx context.Context) (*instance, error) {
	select {
	case in := <-pl.idle:
		return in, nil
	default:
	}
	select {
	case in := <-pl.idle:
		return in, nil
	case pl.slots <- struct{}{}:
		in, err := pl.p.instantiate(ctx)
		if err != nil {
			<-pl.slots
			return nil, err
		}
		return in, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("plugin %q: waiting for a free instance: %w", pl.p.name, ctx.Err())
	case <-pl.done:
		return nil, pl.p.errorf(ErrClosed, "")
	}
}

// put returns a healthy instance to the pool.
func (pl *pool) put(in *instance) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		_ = in.mod.Close(context.Background())
		<-pl.slots
		return
	}
	pl.idle <- in // never blocks: there are at most cap(slots) instances
}

// discard closes a broken instance and frees its slot.
func (pl *pool) discard(ctx context.Context, in *instance) {
	_ = in.mod.Close(ctx)
	<-pl.slots
}

// close closes the idle instances; instances in use are closed when they come back.
func (pl *pool) close(ctx context.Context) {
	pl.mu.Lock()
	if !pl.closed {
		close(pl.done)
	}
	pl.closed = true
	pl.mu.Unlock()
	for {
		select {
		case in := <-pl.idle:
			_ = in.mod.Close(ctx)
			<-pl.slots
		default:
			return
		}
	}
}

// instance is one instantiated guest module.
type instance struct {
	p         *Plugin
	mod       api.Module
	onRequest api.Function
	out       *guestOutput
}

// instantiate starts a new instance and runs the guest's initialization (_initialize, which
// for a Go guest starts the Go runtime and runs package init functions).
func (p *Plugin) instantiate(ctx context.Context) (*instance, error) {
	out := newGuestOutput(p)
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(exportInit).
		WithStdout(out).
		WithStderr(out).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	ictx, cancel := context.WithTimeout(p.mem.with(ctx), max(initTimeoutFloor, p.timeout))
	defer cancel()
	mod, err := p.rt.InstantiateModule(ictx, p.compiled, cfg)
	if err != nil {
		if p.closed.Load() {
			return nil, p.errorf(ErrClosed, "")
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("plugin %q: starting an instance: %w", p.name, ctx.Err())
		}
		var ee *sys.ExitError
		switch {
		case errors.As(err, &ee) && ee.ExitCode() == sys.ExitCodeDeadlineExceeded:
			return nil, p.errorf(ErrTimeout, "initialization ran longer than %v", max(initTimeoutFloor, p.timeout))
		case out.crashLine() != "":
			return nil, p.errorf(ErrFault, "initialization failed: %s", out.crashLine())
		}
		return nil, p.errorf(ErrFault, "initialization failed: %s", firstLine(err.Error()))
	}
	fn := mod.ExportedFunction(exportRequest)
	if fn == nil { // checked at load; kept for safety
		_ = mod.Close(ctx)
		return nil, p.errorf(ErrMissingExport, "%s", exportRequest)
	}
	return &instance{p: p, mod: mod, onRequest: fn, out: out}, nil
}

// run calls the guest's request hook for c under the plugin's time limit. A non-nil error is
// ready to return from Apply; keep reports whether the instance is still healthy (the guest
// returned normally, even if it reported a failure) and may go back to the pool.
func (in *instance) run(ctx context.Context, c *call) (keep bool, err error) {
	err = in.call(ctx, c)
	return err == nil || errors.Is(err, ErrFailed), err
}

func (in *instance) call(ctx context.Context, c *call) error {
	p := in.p
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, callKey{}, c), p.timeout)
	defer cancel()
	in.out.begin(c)
	res, err := in.onRequest.Call(cctx)
	crash := in.out.end()
	if err == nil {
		if len(res) != 1 {
			return p.errorf(ErrFault, "%s returned no result", exportRequest)
		}
		if code := int32(res[0]); code != 0 {
			msg := c.failMsg
			if msg == "" {
				msg = fmt.Sprintf("%s returned %d", exportRequest, code)
			}
			return p.errorf(ErrFailed, "%s", msg)
		}
		return nil
	}
	var f *fault
	if errors.As(err, &f) {
		return p.errorf(f.sentinel, "%s", f.msg)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("plugin %q: %w", p.name, ctx.Err())
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch code := ee.ExitCode(); code {
		case sys.ExitCodeDeadlineExceeded:
			return p.errorf(ErrTimeout, "ran longer than %v", p.timeout)
		case sys.ExitCodeContextCanceled:
			return p.errorf(ErrFault, "canceled")
		default:
			if in.outOfMemory(crash) {
				return p.errorf(ErrMemoryLimit, "limit %s", formatBytes(p.memLimit))
			}
			if crash != "" {
				return p.errorf(ErrFault, "exited with code %d: %s", code, c.scrub(crash))
			}
			return p.errorf(ErrFault, "exited with code %d", code)
		}
	}
	if in.outOfMemory(crash) {
		return p.errorf(ErrMemoryLimit, "limit %s", formatBytes(p.memLimit))
	}
	p.logger.Debug("plugin trap", "detail", c.scrub(err.Error()))
	if crash != "" {
		// A Go guest prints its panic, then traps.
		return p.errorf(ErrFault, "%s", crash)
	}
	return p.errorf(ErrFault, "trapped: %s", c.scrub(strings.TrimPrefix(firstLine(err.Error()), "wasm error: ")))
}

// outOfMemory reports whether a failed call most likely ran out of memory: the Go runtime
// said so on stderr, or the memory has grown to within a page of the limit.
func (in *instance) outOfMemory(crash string) bool {
	if strings.Contains(crash, "out of memory") {
		return true
	}
	mem := in.mod.Memory()
	return mem != nil && uint64(mem.Size())+wasmPageBytes > in.p.memLimit
}
