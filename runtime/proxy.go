package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"

	"github.com/cordonsh/cordon/netproxy"
	"github.com/cordonsh/cordon/policy"
)

// proxyConfig translates a policy into the proxy's configuration, with a fresh token.
func proxyConfig(p *policy.Policy, logger *slog.Logger) netproxy.Config {
	return netproxy.Config{
		Allow:          p.Network.Allow,
		Deny:           p.Network.Deny,
		AllowPrivate:   p.Network.AllowPrivate,
		Token:          newToken(),
		MaxHeaderBytes: p.Proxy.MaxHeaderBytes,
		HeaderTimeout:  p.Proxy.HeaderTimeout,
		DialTimeout:    p.Proxy.DialTimeout,
		IdleTimeout:    p.Proxy.IdleTimeout,
		MaxConns:       p.Proxy.MaxConns,
		Logger:         logger,
	}
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
