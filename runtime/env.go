package runtime

import (
	"strings"

	"github.com/cordonsh/cordon/policy"
)

// NoProxy is the NO_PROXY value a command gets: loopback stays inside the sandbox.
const NoProxy = "localhost,127.0.0.1,::1"

// replacedEnv lists the variables cordon sets itself; any inherited value is dropped.
var replacedEnv = []string{
	"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY",
	"TMPDIR", "CORDON_SANDBOX", "NODE_USE_ENV_PROXY",
}

// commandEnv returns the command's environment: base without the variables the policy
// denies and those cordon replaces, plus the proxy variables (both cases), TMPDIR and
// CORDON_SANDBOX. It also returns the names it removed because of the policy.
func commandEnv(base []string, proc policy.Process, proxyURL, socksURL, tmpdir string, mode policy.Mode) (env, removed []string) {
	for _, kv := range base {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		replaced := false
		for _, r := range replacedEnv {
			if strings.EqualFold(name, r) {
				replaced = true
			}
		}
		switch {
		case replaced:
		case proc.EnvDenied(name):
			removed = append(removed, name)
		default:
			env = append(env, kv)
		}
	}
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY"} {
		env = append(env, name+"="+proxyURL, strings.ToLower(name)+"="+proxyURL)
	}
	env = append(env,
		"ALL_PROXY="+socksURL, "all_proxy="+socksURL,
		"NO_PROXY="+NoProxy, "no_proxy="+NoProxy,
		// Node 24 and later honour the proxy variables in fetch() only when asked to.
		"NODE_USE_ENV_PROXY=1",
		"TMPDIR="+tmpdir,
		"CORDON_SANDBOX="+string(mode),
	)
	return env, removed
}
