package plugins_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/cordonsh/cordon/hostmatch"
	"github.com/cordonsh/cordon/plugins"
)

// Example shows how a proxy uses a plugin: load it once, then apply it to each allowed request
// for its hosts, and never send a request the plugin failed.
func Example() {
	ctx := context.Background()
	host, err := plugins.NewHost(plugins.HostConfig{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		panic(err)
	}
	defer host.Close(ctx)
	p, err := host.Load(ctx, plugins.PluginConfig{
		Name:    "github",
		Path:    "githubro.wasm",
		Hosts:   []hostmatch.Pattern{hostmatch.MustParse("api.github.com")},
		Secrets: map[string][]byte{"github_token": []byte(os.Getenv("GITHUB_TOKEN"))},
	})
	if err != nil {
		panic(err) // names the plugin and the file, e.g. a wrong ABI version
	}

	handle := func(w http.ResponseWriter, req *http.Request) {
		// req.URL carries the scheme and destination host (https for intercepted TLS).
		res, err := p.Apply(req.Context(), req)
		switch {
		case err != nil:
			http.Error(w, "cordon: "+err.Error(), http.StatusBadGateway)
		case res.Deny != nil:
			http.Error(w, res.Deny.Reason, res.Deny.Status)
		default:
			for _, c := range res.Changes {
				fmt.Fprintln(os.Stderr, "plugin changed", c.Name, c.After) // redacted
			}
			// forward req upstream
		}
	}
	_ = handle
}
