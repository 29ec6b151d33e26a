package netproxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cordonsh/cordon/hostmatch"
)

// Credential is a header the proxy sets on requests to Hosts, replacing every copy of the
// header the client sent (whatever the case of its name). The proxy adds it only to requests
// that leave over TLS (intercepted CONNECT tunnels and https upstream routes) unless
// AllowPlainHTTP is set.
type Credential struct {
	// Name identifies the rule in audit events and errors, such as `credential "github"`;
	// never a value. Required.
	Name string
	// Hosts are the destinations the credential is sent to. Required, except for the
	// credential of a Route (which goes to the route's upstream).
	Hosts []hostmatch.Pattern
	// Header is the header to set. Required.
	Header string
	// Value is the header's value, secret included. Required.
	Value string
	// AllowPlainHTTP also sets the header on plain-HTTP requests. Defaults to false.
	AllowPlainHTTP bool
}

func (c *Credential) matches(host string, port uint16) bool {
	for _, h := range c.Hosts {
		if h.Match(host, port) {
			return true
		}
	}
	return false
}

func checkCredential(c *Credential, needHosts bool) error {
	switch {
	case c.Name == "":
		return errors.New("a credential needs a name")
	case needHosts && len(c.Hosts) == 0:
		return fmt.Errorf("credential %s: no hosts", c.Name)
	case c.Header == "" || strings.ContainsAny(c.Header, " \t\r\n:"):
		return fmt.Errorf("credential %s: invalid header name %q", c.Name, c.Header)
	case c.Value == "" || strings.ContainsAny(c.Value, "\r\n\x00"):
		// Never show the value: it holds the secret.
		return fmt.Errorf("credential %s: the value is empty or contains a line break or NUL", c.Name)
	}
	for _, h := range c.Hosts {
		if err := h.CheckAllow(); err != nil {
			return fmt.Errorf("credential %s: %v", c.Name, err)
		}
	}
	return nil
}

// setHeader replaces every copy of name in h, whatever its case, with value.
func setHeader(h http.Header, name, value string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
	h[http.CanonicalHeaderKey(name)] = []string{value}
}

// A RequestHook sees requests on their way out after the credential rules, and may change
// their headers or refuse them. The proxy calls it for every request whose destination it
// matches: requests in intercepted TLS tunnels, plain-HTTP requests and requests on upstream
// routes. The WebAssembly plugins of package plugins are RequestHooks (the runtime adapts
// them).
type RequestHook interface {
	// Name names the hook in audit events and in the errors a client sees.
	Name() string
	// Hosts are the destinations the hook applies to. The proxy reads them once, in New.
	Hosts() []hostmatch.Pattern
	// Apply may change req's headers, or refuse it with HookResult.Deny. req.URL carries
	// the scheme ("https" for intercepted and TLS upstream requests, "http" for plain HTTP)
	// and the destination host. An error fails the request closed: the client gets 502
	// naming the hook, and the request is not sent. Apply is called concurrently.
	Apply(ctx context.Context, req *http.Request) (HookResult, error)
}

// HookResult is what a RequestHook did to a request.
type HookResult struct {
	// Deny, if set, refuses the request: the client gets Deny.Status with Deny.Reason, and
	// the request is not sent.
	Deny *HookDeny
}

// HookDeny is a hook's refusal of a request.
type HookDeny struct {
	// Status is the HTTP status the client gets; values outside 400..599 become 403.
	Status int
	// Reason is shown to the client, after redaction.
	Reason string
}

// touched records which rules and hooks acted on a request, for the audit log.
type touched struct {
	creds    []string // credential rules applied
	withheld []string // credential rules that matched but were not applied (plain HTTP)
	hooks    []string // hooks called
}

func (t *touched) fill(e *event) {
	e.Credentials, e.Withheld, e.Plugins = t.creds, t.withheld, t.hooks
}

// hookFailure is a request that a hook refused or failed.
type hookFailure struct {
	hook   string
	deny   *HookDeny
	err    error
	status int
}

// applyCredentials sets the credentials that apply to a request for dst over the given
// scheme, and then runs the hooks. routeCred, if set, is the credential of the upstream
// route the request came in on and applies whatever the hosts. A non-nil hookFailure means
// the request must not be sent.
func (p *Proxy) applyCredentials(ctx context.Context, req *http.Request, dst target, tls bool, routeCred *Credential, t *touched) *hookFailure {
	for i := range p.cfg.Credentials {
		c := &p.cfg.Credentials[i]
		if !c.matches(dst.host, dst.port) {
			continue
		}
		if !tls && !c.AllowPlainHTTP {
			t.withheld = append(t.withheld, c.Name)
			continue
		}
		setHeader(req.Header, c.Header, c.Value)
		t.creds = append(t.creds, c.Name)
	}
	if routeCred != nil && (tls || routeCred.AllowPlainHTTP) {
		setHeader(req.Header, routeCred.Header, routeCred.Value)
		t.creds = append(t.creds, routeCred.Name)
	}
	for i := range p.hooks {
		h := &p.hooks[i]
		if !h.matches(dst.host, dst.port) {
			continue
		}
		name := h.name
		t.hooks = append(t.hooks, name)
		res, err := p.callHook(ctx, h, req)
		if err != nil {
			return &hookFailure{hook: name, err: err, status: http.StatusBadGateway}
		}
		if res.Deny != nil {
			d := *res.Deny
			if d.Status < 400 || d.Status > 599 {
				d.Status = http.StatusForbidden
			}
			return &hookFailure{hook: name, deny: &d, status: d.Status}
		}
	}
	return nil
}

// hook is a RequestHook with its name and hosts read once.
type hook struct {
	RequestHook
	name  string
	hosts []hostmatch.Pattern
}

func (h *hook) matches(host string, port uint16) bool {
	for _, p := range h.hosts {
		if p.Match(host, port) {
			return true
		}
	}
	return false
}

// callHook runs one hook; a panic in it is a failure of that request, not of the proxy.
func (p *Proxy) callHook(ctx context.Context, h *hook, req *http.Request) (res HookResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plugin %q panicked: %v", h.name, r)
		}
	}()
	return h.Apply(ctx, req)
}

// hookMessage returns the one-line reason a client sees for a hook failure, redacted.
func (p *Proxy) hookMessage(f *hookFailure) string {
	if f.deny != nil {
		reason := strings.TrimSpace(f.deny.Reason)
		if reason == "" {
			reason = "no reason given"
		}
		return p.redact.String(fmt.Sprintf("plugin %q refused the request: %s", f.hook, oneLine(reason)))
	}
	msg := f.err.Error()
	if !strings.Contains(msg, f.hook) {
		msg = fmt.Sprintf("plugin %q failed: %s", f.hook, msg)
	}
	return p.redact.String(oneLine(msg) + " (the request was not sent)")
}
