package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/cordonsh/cordon/hostmatch"
)

// srt settings keys that map onto cordon's format. sandbox-runtime reads everything except
// denyRead and writes only allowWrite, so an import starts from allow_read = ["/"].
var srtKeys = map[string]string{
	"network.allowedDomains":    "network.allow",
	"network.deniedDomains":     "network.deny",
	"network.allowUnixSockets":  "network.allow_unix_sockets",
	"network.allowLocalBinding": "network.allow_local_bind",
	"filesystem.denyRead":       "filesystem.deny_read",
	"filesystem.allowWrite":     "filesystem.allow_write",
	"filesystem.denyWrite":      "filesystem.deny_write",
}

// FromSRT converts sandbox-runtime JSON settings (the ~/.srt-settings.json format) into a
// policy file layer. The notes name every key that cordon does not support; such keys are
// not applied, so an unsupported key can never grant anything.
func FromSRT(name string, data []byte) (toml []byte, notes []string, err error) {
	f, notes, err := fromSRT(name, data)
	if err != nil {
		return nil, nil, err
	}
	return formatFile(f, []string{"Imported from " + name + " (sandbox-runtime settings)."}, notes), notes, nil
}

func fromSRT(name string, data []byte) (*fileV1, []string, error) {
	var root map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil, nil, jsonError(name, data, err)
	}
	if dec.More() {
		return nil, nil, &Error{File: name, Msg: "unexpected data after the JSON object"}
	}
	version := Version
	f := &fileV1{Version: &version, Filesystem: fsFileV1{AllowRead: []string{"/"}}}
	var notes []string
	var keys []string
	for k, v := range root {
		sub, ok := v.(map[string]any)
		if (k == "network" || k == "filesystem") && ok {
			for sk := range sub {
				keys = append(keys, k+"."+sk)
			}
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		target, ok := srtKeys[key]
		if !ok {
			notes = append(notes, fmt.Sprintf("%s: %q is not supported by cordon and was not applied", name, key))
			continue
		}
		val := lookupJSON(root, key)
		fail := func(msg string) error {
			return &Error{File: name, Line: jsonKeyLine(data, key), Key: key, Msg: msg}
		}
		if target == "network.allow_local_bind" {
			b, ok := val.(bool)
			if !ok {
				return nil, nil, fail("must be true or false")
			}
			f.Network.AllowLocalBind = &b
			continue
		}
		list, ok := stringList(val)
		if !ok {
			return nil, nil, fail("must be a list of strings")
		}
		switch target {
		case "network.allow", "network.deny":
			for _, s := range list {
				p, err := hostmatch.Parse(s)
				if err != nil {
					return nil, nil, fail(err.Error())
				}
				if target == "network.allow" {
					f.Network.Allow = append(f.Network.Allow, pattern{p})
				} else {
					f.Network.Deny = append(f.Network.Deny, pattern{p})
				}
			}
		case "network.allow_unix_sockets":
			f.Network.AllowUnixSockets = list
		case "filesystem.deny_read":
			f.Filesystem.DenyRead = list
		case "filesystem.allow_write":
			f.Filesystem.AllowWrite = list
		case "filesystem.deny_write":
			f.Filesystem.DenyWrite = list
		}
	}
	return f, notes, nil
}

func lookupJSON(root map[string]any, key string) any {
	var cur any = root
	for len(key) > 0 {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		part := key
		if i := bytes.IndexByte([]byte(key), '.'); i >= 0 {
			part, key = key[:i], key[i+1:]
		} else {
			key = ""
		}
		cur = m[part]
	}
	return cur
}

func stringList(v any) ([]string, bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return slices.Clip(out), true
}

// jsonError turns a decoding error into an *Error with the line it happened on.
func jsonError(name string, data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &Error{File: name, Line: lineAt(data, se.Offset), Msg: "JSON syntax: " + se.Error(), Err: err}
	case errors.As(err, &te):
		return &Error{File: name, Line: lineAt(data, te.Offset), Msg: "settings must be a JSON object", Err: err}
	}
	return &Error{File: name, Msg: "JSON: " + err.Error(), Err: err}
}

func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// jsonKeyLine finds the line of the last component of a dotted key, or 0.
func jsonKeyLine(data []byte, key string) int {
	last := key
	if i := bytes.LastIndexByte([]byte(key), '.'); i >= 0 {
		last = key[i+1:]
	}
	i := bytes.Index(data, []byte(`"`+last+`"`))
	if i < 0 {
		return 0
	}
	return lineAt(data, int64(i))
}
