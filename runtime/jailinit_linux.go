package runtime

import (
	"github.com/cordonsh/cordon/runtime/internal/jailinit"
)

// The init helper lives in package jailinit, which takes over in its own initialization
// (see there why); these names keep the supervisor's side of the protocol readable.

const (
	initArg0   = jailinit.Arg0
	probeArg   = jailinit.ProbeArg
	maxMessage = jailinit.MaxMessage

	msgListener = jailinit.MsgListener
	msgError    = jailinit.MsgError
	msgExec     = jailinit.MsgExec
	msgStarted  = jailinit.MsgStarted
	msgExit     = jailinit.MsgExit

	stepConfig   = jailinit.StepConfig
	stepLoopback = jailinit.StepLoopback
	stepListen   = jailinit.StepListen
	stepMount    = jailinit.StepMount
	stepRlimit   = jailinit.StepRlimit
	stepDir      = jailinit.StepDir
)

// forwarded are the signals passed on to the command.
var forwarded = jailinit.Forwarded

func errnoOf(err error) int { return jailinit.ErrnoOf(err) }

type (
	initConfig    = jailinit.Config
	message       = jailinit.Message
	routeListener = jailinit.RouteListener
)

// maybeInit does nothing on Linux: package jailinit has already run the helper, if this
// process is one, before main.
func maybeInit() {}
