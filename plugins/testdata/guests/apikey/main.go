//go:build wasip1

// Command apikey is the example of docs/plugins.md, kept here so that a test proves it works.
package main

import "github.com/cordonsh/cordon/plugins/sdk"

func init() {
	// Config is read once, when the plugin starts.
	header := sdk.ConfigOr("header", "X-Api-Key")

	sdk.Handle(func(r *sdk.Request) error {
		if r.Method() == "DELETE" {
			return r.Deny(403, "deleting is not allowed from the sandbox")
		}
		// cordon fills in the secret; the plugin never sees it.
		return r.SetHeaderFromSecret(header, "api_key", "{secret}")
	})
}

func main() {}
