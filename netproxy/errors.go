package netproxy

import "errors"

// Errors returned by the package; match them with errors.Is.
var (
	// ErrClosed is returned by Serve once the Proxy is closed.
	ErrClosed = errors.New("netproxy: proxy closed")
	// ErrConfig wraps every error of New about an invalid Config.
	ErrConfig = errors.New("netproxy: invalid config")
)

// Errors of the request readers. They never leave the package: a client that causes one
// gets a 400 response, a SOCKS5 failure reply or a closed connection.
var (
	errBadRequest   = errors.New("malformed request")
	errHeaderTooBig = errors.New("request header too large")
	errBadAuthority = errors.New("invalid authority")
	errNotProxyForm = errors.New("request target is not in proxy form")
	errBadScheme    = errors.New("unsupported scheme")
	errBadFraming   = errors.New("ambiguous message framing")
	errSOCKS        = errors.New("socks5")
	errIdle         = errors.New("idle timeout")
)
