package runtime

import "github.com/cordonsh/cordon/netproxy"

// SetTestProxyHook makes every run's proxy configuration pass through f (after the
// credentials are added), until the returned function is called.
func SetTestProxyHook(f func(*netproxy.Config)) (restore func()) {
	old := testProxyHook
	testProxyHook = f
	return func() { testProxyHook = old }
}
