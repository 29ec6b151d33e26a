package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A macOS run: cordon (the supervisor) starts the proxy on a loopback port with the run's
// token, writes the run's Seatbelt profile (seatbelt.go), and starts
//
//	/usr/bin/sandbox-exec -p PROFILE /path/to/cordon cordon-seatbelt-helper
//
// sandbox-exec applies the profile to itself and executes the helper (seatbelt_helper.go),
// which starts the command. Everything they start inherits the sandbox. The supervisor
// serves the proxy, passes signals and the terminal on, reads the run's denials from the
// unified log, and returns the command's exit status (seatbelt_run.go).

func run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Policy == nil {
		return nil, errors.New("runtime: Config.Policy is nil")
	}
	if len(cfg.Args) == 0 || cfg.Args[0] == "" {
		return nil, errors.New("runtime: no command")
	}
	if cfg.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
		cfg.Dir = wd
	}
	if abs, err := filepath.Abs(cfg.Dir); err == nil {
		cfg.Dir = abs
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.Stdin == nil {
		cfg.Stdin = os.Stdin
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Diag == nil {
		cfg.Diag = cfg.Stderr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	creds, err := runCredentials(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer creds.Close(context.Background())

	support := currentSupport()
	pl := explainSeatbelt(cfg.Policy, support)
	if pl.Refused != "" {
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, pl.Refused)
	}
	if len(pl.NotEnforced) > 0 && !cfg.Policy.Sandbox.BestEffort {
		return nil, fmt.Errorf("%w on this machine (%s mode), and the policy does not set sandbox.best_effort:\n  - %s",
			ErrUnenforceable, pl.Mode, strings.Join(pl.NotEnforced, "\n  - "))
	}
	r := &seatbeltRunner{
		cfg: cfg, pol: cfg.Policy, support: support, log: cfg.Logger, creds: creds,
		sandboxExec:   support.SandboxExec,
		streamDenials: startDenialStream,
		userProcesses: func() int {
			procs, _ := unix.SysctlKinfoProcSlice("kern.proc.uid", os.Getuid())
			return len(procs)
		},
	}
	return r.run(ctx, pl)
}

// runCredentials resolves the policy's secrets before anything of the sandbox exists and
// makes cordon's messages and logs redact them, as on Linux.
//
// It and pluginCacheDir are the same as in credentials_linux.go, which is Linux-only by its
// name; when they move to a file for every system, these copies go.
func runCredentials(ctx context.Context, cfg *Config) (*Credentials, error) {
	c, err := ResolveCredentials(ctx, cfg.Policy, CredentialOptions{
		Env: cfg.Env, Dir: cfg.Dir, Stdin: cfg.Stdin, Diag: cfg.Diag, Logger: cfg.Logger,
		PluginCacheDir: pluginCacheDir(cfg.Env),
	})
	if err != nil {
		return nil, err
	}
	red := c.Redactor()
	cfg.Diag = red.Writer(cfg.Diag)
	cfg.Logger = slog.New(red.Handler(cfg.Logger.Handler()))
	return c, nil
}

func pluginCacheDir(env []string) string {
	if d, ok := lookupEnv(env, "XDG_CACHE_HOME"); ok && filepath.IsAbs(d) {
		return filepath.Join(d, "cordon", "wasm")
	}
	if h, ok := lookupEnv(env, "HOME"); ok && filepath.IsAbs(h) {
		return filepath.Join(h, ".cache", "cordon", "wasm")
	}
	return ""
}
