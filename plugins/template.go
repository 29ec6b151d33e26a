package plugins

import (
	"errors"
	"strings"
)

// A template is the text of a header value, key or hashed message in which the host, not the
// plugin, fills in secrets. The syntax (documented in docs/plugin-abi.md):
//
//	{secret:NAME}   the bytes of the secret NAME
//	{secret}        the secret named by the call's own secret argument, where it has one
//	{{  }}          a literal "{" and "}"
//
// Any other "{" or "}" is an error, so text from the request that the plugin forgot to escape
// fails loudly instead of expanding a secret.

// tmplPart is one piece of a parsed template: literal text, or the name of a secret.
type tmplPart struct {
	text   string
	secret string // non-empty for a placeholder
}

var (
	errTemplate   = errors.New("invalid template")
	errSecretName = errors.New("invalid secret name")
)

const maxSecretName = 64

// validSecretName reports whether s may name a secret: 1 to 64 of [A-Za-z0-9_.-].
func validSecretName(s string) bool {
	if s == "" || len(s) > maxSecretName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// parseTemplate parses t. def is the secret "{secret}" stands for; if def is empty,
// "{secret}" is an error.
func parseTemplate(t, def string) ([]tmplPart, error) {
	var parts []tmplPart
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			parts = append(parts, tmplPart{text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(t); {
		c := t[i]
		switch {
		case c == '{' && i+1 < len(t) && t[i+1] == '{':
			text.WriteByte('{')
			i += 2
		case c == '}' && i+1 < len(t) && t[i+1] == '}':
			text.WriteByte('}')
			i += 2
		case c == '}':
			return nil, errTemplate
		case c == '{':
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return nil, errTemplate
			}
			inner := t[i+1 : i+end]
			var name string
			switch {
			case inner == "secret":
				if def == "" {
					return nil, errTemplate
				}
				name = def
			case strings.HasPrefix(inner, "secret:"):
				name = inner[len("secret:"):]
			default:
				return nil, errTemplate
			}
			if !validSecretName(name) {
				return nil, errSecretName
			}
			flush()
			parts = append(parts, tmplPart{secret: name})
			i += end + 1
		default:
			text.WriteByte(c)
			i++
		}
	}
	flush()
	return parts, nil
}

// escapeTemplate returns s as template text that expands to s itself.
func escapeTemplate(s string) string {
	if !strings.ContainsAny(s, "{}") {
		return s
	}
	return strings.NewReplacer("{", "{{", "}", "}}").Replace(s)
}

// render joins the parts, writing each secret as mark(name).
func render(parts []tmplPart, mark func(name string) string) string {
	var b strings.Builder
	for _, p := range parts {
		if p.secret != "" {
			b.WriteString(mark(p.secret))
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}
