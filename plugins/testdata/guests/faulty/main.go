//go:build wasip1

// Command faulty is a test plugin. The request header X-Test-Mode chooses what it does, so
// that one loaded plugin can misbehave in every way and the tests can check that the host
// keeps serving.
package main

import (
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/cordonsh/cordon/plugins/sdk"
)

var keep [][]byte

func init() { sdk.Handle(handle) }

func main() {}

func handle(r *sdk.Request) error {
	switch mode := r.Header("X-Test-Mode"); mode {
	case "", "ok":
		return r.SetHeader("X-Ok", "1")
	case "panic":
		panic("boom")
	case "loop":
		n := 0
		for {
			n++
		}
	case "membomb":
		for {
			keep = append(keep, make([]byte, 1<<20))
		}
	case "exit":
		os.Exit(3)
	case "deny":
		return r.Deny(451, "denied by test plugin")
	case "fail":
		return errors.New("test plugin says no")
	case "ungranted":
		return r.SetHeaderFromSecret("Authorization", "not_granted", "Bearer {secret}")
	case "secret":
		return r.SetHeaderFromSecret("Authorization", "canary", "Bearer {secret}")
	case "forbidden":
		for _, h := range []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Proxy-Authorization"} {
			if err := r.SetHeader(h, "x"); !errors.Is(err, sdk.ErrForbidden) {
				return errors.New("setting " + h + " was not forbidden")
			}
		}
		if err := r.SetHeader("Bad Name", "x"); !errors.Is(err, sdk.ErrInvalid) {
			return errors.New("a bad header name was accepted")
		}
		if err := r.SetHeader("X-Crlf", "a\r\nX-Injected: 1"); !errors.Is(err, sdk.ErrInvalid) {
			return errors.New("a header value with CRLF was accepted")
		}
		if err := r.SetHeaderFromSecret("X-T", "canary", "{oops}"); !errors.Is(err, sdk.ErrInvalid) {
			return errors.New("a bad template was accepted")
		}
		return r.SetHeader("X-Ok", "forbidden-checked")
	case "echo":
		set := func(k, v string) {
			if err := r.SetHeader(k, v); err != nil {
				panic(k + ": " + err.Error())
			}
		}
		set("X-Method", r.Method())
		set("X-Scheme", r.Scheme())
		set("X-Host", r.Host())
		set("X-Port", strconv.Itoa(r.Port()))
		set("X-Path", r.Path())
		set("X-Query", r.Query())
		set("X-Names", strings.Join(r.HeaderNames(), ","))
		set("X-Greeting", sdk.ConfigOr("greeting", "none"))
		set("X-Multi", strings.Join(r.HeaderValues("X-In"), "|"))
		set("X-Hidden", r.Header("Proxy-Authorization"))
		set("X-Host-Header", r.Header("host"))
		return r.RemoveHeader("X-Remove-Me")
	case "body":
		sum, err := r.BodySHA256()
		if err != nil {
			return r.SetHeader("X-Body", "error: "+err.Error())
		}
		return r.SetHeader("X-Body", hex.EncodeToString(sum[:]))
	case "canary":
		// Try every way a plugin could see a secret it was given, and report what it saw.
		if err := r.SetHeaderFromSecret("Authorization", "canary", "Bearer {secret}"); err != nil {
			return err
		}
		if err := r.AddHeader("X-Two", "plain"); err != nil {
			return err
		}
		var t sdk.Template
		if err := r.SetHeaderTemplate("X-Two", t.Text("k={").Secret("canary").Text("}")); err != nil {
			return err
		}
		seen := r.Header("Authorization") + " | " + strings.Join(r.HeaderValues("X-Two"), ",")
		for _, n := range r.HeaderNames() {
			seen += " | " + n + "=" + strings.Join(r.HeaderValues(n), ",")
		}
		key, err := sdk.KeyFromSecret("canary", "{secret}")
		if err != nil {
			return err
		}
		sum, err := key.HMAC([]byte("data"))
		if err != nil {
			return err
		}
		sig := hex.EncodeToString(sum[:])
		sdk.Info("saw: " + seen + " sig=" + sig)
		os.Stderr.WriteString("stderr sig=" + sig + "\n")
		if err := r.SetHeader("X-Seen", seen); err != nil {
			return err
		}
		switch r.Header("X-Then") {
		case "deny":
			return r.Deny(403, "sig="+sig)
		case "fail":
			return errors.New("sig=" + sig)
		case "panic":
			panic("sig=" + sig)
		}
		return r.SetHeader("X-Sig", sig)
	case "log-flood":
		for i := 0; i < 1000; i++ {
			sdk.Info("line " + strconv.Itoa(i))
		}
		return nil
	}
	return errors.New("unknown mode")
}
