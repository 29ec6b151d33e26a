//go:build wasip1

// Command githubro is a cordon plugin that makes the GitHub API read-only: GET and HEAD
// requests go out with the token added; every other method is refused with 403 and a reason.
// GraphQL (always POST) is refused too, since a read cannot be told from a write without
// reading the body.
//
// Config (optional):
//
//	secret  the secret holding the GitHub token (default "github_token")
//
// Bind it to "api.github.com" in the policy.
package main

import (
	"errors"

	"github.com/cordonsh/cordon/plugins/sdk"
)

func init() {
	secret := sdk.ConfigOr("secret", "github_token")
	sdk.Handle(func(r *sdk.Request) error {
		switch m := r.Method(); m {
		case "GET", "HEAD":
			if err := r.SetHeaderFromSecret("Authorization", secret, "Bearer {secret}"); err != nil {
				return errors.New("githubro: cannot add the token: " + err.Error())
			}
			return nil
		default:
			return r.Deny(403, "cordon: the GitHub API is read-only in this sandbox; "+m+" "+r.Path()+" refused")
		}
	})
}

func main() {}
