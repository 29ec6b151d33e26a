// Package netjail gives a sandbox its network: a private network namespace with only a
// loopback interface, in which the init helper creates the proxy's listener and hands its
// file descriptor to cordon's supervisor over a unix socket. The supervisor accepts the
// connections made inside the sandbox and dials out from the host's namespace: there is no
// bridge process and no route out.
//
// Where user namespaces are refused, the runtime's fallback uses Landlock's TCP rules and
// seccomp instead; this package then only provides the descriptor passing.
package netjail

import "errors"

// ProxyPort is the port of the proxy listener on 127.0.0.1 inside a sandbox's network
// namespace. The namespace is private, so the port is always free.
const ProxyPort = 3128

// ErrUnsupported: this platform has no network namespaces.
var ErrUnsupported = errors.New("netjail: not supported on this platform")
