package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cordonsh/cordon/netproxy"
	cordonrt "github.com/cordonsh/cordon/runtime"
)

func init() {
	register(command{
		name:    "proxy",
		summary: "run the egress proxy on its own, for a container or another machine",
		usage: func() string {
			fs := newFlagSet("proxy")
			(&proxyFlags{}).register(fs)
			return `Usage: cordon proxy [flags]

Runs cordon's egress proxy as a service: HTTP forward proxy, CONNECT and SOCKS5 on one
port, with the policy's [network] allow and deny lists, address checks, [proxy] limits and
[audit] log, exactly as during 'cordon -- COMMAND'. It prints the proxy URL to use on
standard output (one line) and serves until interrupted, then prints what it blocked.

The URL carries a random token that every client must present ("cordon" and the token, as
proxy credentials); set HTTP_PROXY, HTTPS_PROXY and ALL_PROXY to it, or use
socks5h://cordon:TOKEN@ADDR for SOCKS5. The token travels in clear text: on a listen
address other than loopback, anyone who can watch that network can use the proxy.

Flags:
` + flagDefaults(fs) + `
See docs/proxy.md.
`
		},
		run: runProxy,
	})
}

type proxyFlags struct {
	policyFlags
	listen    string
	tokenFile string
}

func (pf *proxyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&pf.file, "policy", "", "policy `FILE` (TOML, or sandbox-runtime JSON settings); default ./cordon.toml if present")
	fs.Var(&pf.presets, "preset", "start from the built-in preset `NAME`; repeatable")
	fs.Var(&pf.allowDomain, "allow-domain", "allow the destination `PATTERN` (example.com, *.example.com, host:port); repeatable")
	fs.StringVar(&pf.listen, "listen", "127.0.0.1:0", "listen on `ADDR` (host:port; port 0 picks a free one)")
	fs.StringVar(&pf.tokenFile, "token-file", "", "read the proxy token from `FILE` instead of making a random one (at least 16 characters)")
}

func runProxy(args []string, io stdio) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveProxy(ctx, args, io)
}

// serveProxy is the proxy command until ctx is done.
func serveProxy(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("proxy")
	var pf proxyFlags
	pf.register(fs)
	if !parseFlags(fs, args, io) {
		return exitFailure
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "cordon proxy: unexpected argument %q\n", fs.Arg(0))
		return exitFailure
	}
	pol, err := pf.load()
	if err != nil {
		fmt.Fprintf(io.err, "cordon proxy: %v\n", err)
		return exitFailure
	}
	printNotes(pol, io)
	logger := slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := cordonrt.ProxyConfig(pol, logger)
	if pf.tokenFile != "" {
		data, err := os.ReadFile(pf.tokenFile)
		if err != nil {
			fmt.Fprintf(io.err, "cordon proxy: read token: %v\n", err)
			return exitFailure
		}
		tok := strings.TrimSpace(string(data))
		if len(tok) < 16 || strings.ContainsAny(tok, ":@/ \t\r\n") {
			fmt.Fprintf(io.err, "cordon proxy: the token in %s must be at least 16 characters, without \":\", \"@\", \"/\" or spaces\n", pf.tokenFile)
			return exitFailure
		}
		cfg.Token = tok
	}
	audit, err := cordonrt.OpenAuditLog(pol)
	if err != nil {
		fmt.Fprintf(io.err, "cordon proxy: %v\n", err)
		return exitFailure
	}
	if audit != nil {
		defer audit.Close()
		cfg.Audit = audit
	}
	p, err := netproxy.New(cfg)
	if err != nil {
		fmt.Fprintf(io.err, "cordon proxy: %v\n", err)
		return exitFailure
	}
	l, err := net.Listen("tcp", pf.listen)
	if err != nil {
		fmt.Fprintf(io.err, "cordon proxy: %v\n", err)
		return exitFailure
	}
	addr := l.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() {
		fmt.Fprintf(io.err, "cordon proxy: warning: listening on %s, beyond loopback; the token travels in clear text to this port\n", addr)
	}
	url := p.URL(addr.String())
	fmt.Fprintln(io.out, url)
	fmt.Fprintf(io.err, "cordon proxy: serving %s; %d allow rules, %d deny rules. Use:\n"+
		"  HTTP_PROXY=%s HTTPS_PROXY=%s ALL_PROXY=%s\n  or SOCKS5: %s\n",
		addr, len(cfg.Allow), len(cfg.Deny), url, url, url, strings.Replace(url, "http://", "socks5h://", 1))
	served := make(chan error, 1)
	go func() { served <- p.Serve(l) }()
	code := 0
	select {
	case <-ctx.Done():
	case err := <-served:
		fmt.Fprintf(io.err, "cordon proxy: %v\n", err)
		code = exitFailure
	}
	_ = p.Close()
	if code == 0 {
		if err := <-served; err != nil && !errors.Is(err, netproxy.ErrClosed) {
			fmt.Fprintf(io.err, "cordon proxy: %v\n", err)
		}
	}
	cordonrt.WriteBlockedSummary(io.err, p.Summary())
	return code
}
