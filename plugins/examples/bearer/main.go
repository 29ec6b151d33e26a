//go:build wasip1

// Command bearer is a cordon plugin that adds a token to every request bound for its hosts,
// replacing any copy of the header the client sent.
//
// Config (all optional):
//
//	secret  the secret holding the token   (default "token")
//	header  the header to set              (default "Authorization")
//	format  the value, as a template       (default "Bearer {secret}")
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bearer.wasm .
package main

import (
	"errors"

	"github.com/cordonsh/cordon/plugins/sdk"
)

func init() {
	secret := sdk.ConfigOr("secret", "token")
	header := sdk.ConfigOr("header", "Authorization")
	format := sdk.ConfigOr("format", "Bearer {secret}")
	sdk.Handle(func(r *sdk.Request) error {
		if err := r.SetHeaderFromSecret(header, secret, format); err != nil {
			return errors.New("bearer: cannot set header " + header + " (check the plugin's header and format config): " + err.Error())
		}
		return nil
	})
}

func main() {}
