package runtime

import (
	"context"
	"fmt"
	"os"
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
	if err := cfg.setDefaults(); err != nil {
		return nil, err
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
