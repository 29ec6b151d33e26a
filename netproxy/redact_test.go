package netproxy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestRedactor(t *testing.T) {
	secret := "s3cr3t-value-123"
	r := NewRedactor(map[string][]byte{"tok": []byte(secret), "empty": nil, "short": []byte("s3cr3t")})
	basic := base64.StdEncoding.EncodeToString([]byte(secret))
	for _, tc := range []struct{ in, want string }{
		{"nothing here", "nothing here"},
		{"Bearer " + secret, "Bearer [secret tok]"},
		{"a " + secret + " b " + secret, "a [secret tok] b [secret tok]"},
		{"Basic " + basic, "Basic [secret tok]"},
		{"s3cr3t alone", "[secret short] alone"},
	} {
		if got := r.String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := string(r.Bytes([]byte(tc.in))); got != tc.want {
			t.Errorf("Bytes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}

	var buf bytes.Buffer
	w := r.Writer(&buf)
	if n, err := w.Write([]byte("x " + secret + "\n")); err != nil || n != len(secret)+3 {
		t.Errorf("Write: %d, %v", n, err)
	}
	log := slog.New(r.Handler(slog.NewJSONHandler(&buf, nil)))
	log.With("pre", secret).Info("msg "+secret, "err", errors.New("failed: "+secret), "s", secret,
		slog.Group("g", "inner", secret), "n", 3)
	if strings.Contains(buf.String(), secret) || strings.Contains(buf.String(), basic) {
		t.Errorf("the secret got through: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"n":3`) {
		t.Errorf("other attributes changed: %s", buf.String())
	}

	var nilR *Redactor
	if nilR.String(secret) != secret || nilR.Writer(&buf) != &buf || !nilR.Empty() {
		t.Error("a nil Redactor changed something")
	}
	r.Wipe()
	if !r.Empty() || r.String(secret) != secret {
		t.Error("Wipe left secrets to redact")
	}
}
