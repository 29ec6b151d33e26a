package netproxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"time"
)

// event is one line of the audit log. docs/proxy.md documents every field; keep them in step.
type event struct {
	Time      string `json:"time"`             // RFC 3339, UTC, milliseconds
	Event     string `json:"event"`            // "decision", "close", "request", "auth_failed", "bad_request", "intercept_failed"
	Proto     string `json:"proto"`            // "http", "connect", "socks5", "https" (intercepted), "route"
	Client    string `json:"client,omitempty"` // the client's address
	Method    string `json:"method,omitempty"` // HTTP method, for proto "http"
	Host      string `json:"host,omitempty"`   // canonical host name or IP address
	Port      uint16 `json:"port,omitempty"`
	Addr      string `json:"addr,omitempty"`     // the address dialed (or refused), "ip:port"
	Decision  string `json:"decision,omitempty"` // "allow" or "deny"
	Rule      string `json:"rule,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Status    int    `json:"status,omitempty"`   // HTTP status sent for a refusal or failure
	Requests  int    `json:"requests,omitempty"` // requests carried by a closed HTTP upstream connection
	BytesUp   int64  `json:"bytes_up"`
	BytesDown int64  `json:"bytes_down"`
	Duration  int64  `json:"duration_ms"`
	Error     string `json:"error,omitempty"`
	// Intercepted marks a CONNECT tunnel whose TLS the proxy terminated.
	Intercepted bool `json:"intercepted,omitempty"`
	// Route is the upstream route a request came in on, for proto "route".
	Route string `json:"route,omitempty"`
	// Credentials, Withheld and Plugins name the credential rules applied to a request,
	// those that matched but were not applied (plain HTTP), and the plugins called. Names
	// only, never values.
	Credentials []string `json:"credentials,omitempty"`
	Withheld    []string `json:"withheld,omitempty"`
	Plugins     []string `json:"plugins,omitempty"`
}

// auditor writes events as JSON lines, one Write per line, in the order they happen.
type auditor struct {
	w      io.Writer
	log    *slog.Logger
	mu     sync.Mutex
	failed bool
}

func (a *auditor) write(e *event) {
	if a.w == nil {
		return
	}
	e.Time = time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	line, err := json.Marshal(e)
	if err != nil { // cannot happen with these field types
		return
	}
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.w.Write(line); err != nil && !a.failed {
		a.failed = true
		a.log.Error("netproxy: writing the audit log failed; further failures are not reported", "err", err)
	}
}

// refuse records a refused destination: in the summary, in the audit log and the debug log.
func (p *Proxy) refuse(e *event, t target, v verdict) {
	p.mu.Lock()
	k := blockKey{t.String(), v.rule}
	b := p.blocked[k]
	if b == nil {
		b = &Blocked{Host: k.host, Rule: v.rule, Fix: v.fix}
		p.blocked[k] = b
	}
	b.Count++
	p.mu.Unlock()
	e.Event, e.Decision, e.Rule, e.Reason = "decision", "deny", v.rule, v.reason
	e.Host, e.Port = t.host, t.port
	p.audit.write(e)
	p.cfg.Logger.Debug("netproxy: refused", "proto", e.Proto, "dest", t.String(), "rule", v.rule, "reason", v.reason)
}
