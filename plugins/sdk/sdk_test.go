package sdk

import (
	"errors"
	"testing"
)

func TestTemplateEscapesText(t *testing.T) {
	tests := []struct {
		build func(*Template)
		want  string
	}{
		{func(t *Template) { t.Text("Bearer ").Secret("tok") }, "Bearer {secret:tok}"},
		{func(t *Template) { t.Text("{secret:other}") }, "{{secret:other}}"},
		{func(t *Template) { t.Text("a}b{").Secret("x").Text("}") }, "a}}b{{{secret:x}}}"},
		{func(t *Template) {}, ""},
	}
	for _, tc := range tests {
		var tm Template
		tc.build(&tm)
		if got := tm.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestCodeErrors(t *testing.T) {
	for code, want := range map[int32]error{0: nil, 7: nil, -1: ErrNotFound, -2: ErrInvalid, -3: ErrForbidden, -4: ErrLimit, -5: ErrUnavailable, -9: ErrUnavailable, -100: ErrNotPlugin} {
		if got := codeErr(code); !errors.Is(got, want) || (want == nil) != (got == nil) {
			t.Errorf("codeErr(%d) = %v, want %v", code, got, want)
		}
	}
}

// Outside a wasip1 build there is no host: calls report ErrNotPlugin instead of crashing, so
// that code using the SDK can be built and vetted anywhere.
func TestOutsidePlugin(t *testing.T) {
	var r Request
	if err := r.SetHeader("a", "b"); !errors.Is(err, ErrNotPlugin) {
		t.Errorf("SetHeader: %v", err)
	}
	if _, err := KeyFromSecret("s", "{secret}"); !errors.Is(err, ErrNotPlugin) {
		t.Errorf("KeyFromSecret: %v", err)
	}
	if v := r.HeaderValues("a"); v != nil {
		t.Errorf("HeaderValues: %v", v)
	}
	if _, ok := Config("k"); ok {
		t.Error("Config found a key")
	}
	if onRequest() != 1 {
		t.Error("the hook succeeded without a handler")
	}
}
