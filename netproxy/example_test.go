package netproxy_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/cordonsh/cordon/hostmatch"
	"github.com/cordonsh/cordon/netproxy"
)

// A proxy that lets a command reach api.example.com over HTTPS only. A client (here
// net/http) uses the URL with the token; a refused request gets 403 and shows up in the
// summary.
func Example() {
	p, err := netproxy.New(netproxy.Config{
		Allow:        []hostmatch.Pattern{hostmatch.MustParse("api.example.com:443")},
		Token:        "a-fresh-random-token",
		PolicySource: "/home/me/project/cordon.toml",
	})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go p.Serve(l)

	proxyURL, _ := url.Parse(p.URL(l.Addr().String()))
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := client.Get("http://example.org/")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	fmt.Println(resp.Header.Get("X-Cordon-Block"))
	for _, b := range p.Summary() {
		fmt.Printf("%s %d× %s\n  fix: %s\n", b.Host, b.Count, b.Rule, b.Fix)
	}
	// Output:
	// 403 Forbidden
	// example.org:80 is not in network.allow
	// example.org:80 1× not in network.allow
	//   fix: add "example.org:80" to network.allow in /home/me/project/cordon.toml, or run with --allow-domain example.org:80
}
