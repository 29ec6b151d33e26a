package netproxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

// Redactor replaces secret values in text with "[secret NAME]". Every path of cordon that
// writes text which might carry a secret (error bodies, the audit log, debug logs, messages
// to the user) passes it through one. Besides each value as it is, it also finds the value's
// standard and URL-safe base64 forms, which is how a value travels in a Basic Authorization
// header. The zero Redactor and a nil *Redactor redact nothing. A Redactor is safe for
// concurrent use; it keeps its own copies of the values, which Wipe zeroes.
type Redactor struct {
	needles []needle // longest first, so that a value is never half-replaced by a shorter one
}

type needle struct {
	value []byte
	label string
}

// NewRedactor returns a Redactor for the named secrets. Empty values are ignored.
func NewRedactor(secrets map[string][]byte) *Redactor {
	r := &Redactor{}
	for name, v := range secrets {
		r.add(name, v)
	}
	r.sort()
	return r
}

func (r *Redactor) add(name string, v []byte) {
	if len(v) == 0 {
		return
	}
	label := "[secret " + name + "]"
	forms := [][]byte{bytes.Clone(v)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		e := make([]byte, enc.EncodedLen(len(v)))
		enc.Encode(e, v)
		forms = append(forms, e)
	}
	for _, f := range forms {
		dup := false
		for _, n := range r.needles {
			if bytes.Equal(n.value, f) {
				dup = true
			}
		}
		if !dup {
			r.needles = append(r.needles, needle{f, label})
		}
	}
}

func (r *Redactor) sort() {
	sort.SliceStable(r.needles, func(i, j int) bool { return len(r.needles[i].value) > len(r.needles[j].value) })
}

// merge returns a Redactor that redacts the secrets of both r and o.
func (r *Redactor) merge(o *Redactor) *Redactor {
	out := &Redactor{}
	if r != nil {
		out.needles = append(out.needles, r.needles...)
	}
	if o != nil {
		out.needles = append(out.needles, o.needles...)
	}
	out.sort()
	return out
}

// Empty reports whether r redacts nothing.
func (r *Redactor) Empty() bool { return r == nil || len(r.needles) == 0 }

// String returns s with every secret replaced.
func (r *Redactor) String(s string) string {
	if r.Empty() {
		return s
	}
	for _, n := range r.needles {
		if strings.Contains(s, string(n.value)) {
			s = strings.ReplaceAll(s, string(n.value), n.label)
		}
	}
	return s
}

// Bytes returns b with every secret replaced; b itself is not changed.
func (r *Redactor) Bytes(b []byte) []byte {
	if r.Empty() {
		return b
	}
	for _, n := range r.needles {
		if bytes.Contains(b, n.value) {
			b = bytes.ReplaceAll(b, n.value, []byte(n.label))
		}
	}
	return b
}

// Contains reports whether s holds any secret.
func (r *Redactor) Contains(s string) bool {
	if r.Empty() {
		return false
	}
	for _, n := range r.needles {
		if strings.Contains(s, string(n.value)) {
			return true
		}
	}
	return false
}

// Wipe zeroes the Redactor's copies of the secrets; it redacts nothing afterwards.
func (r *Redactor) Wipe() {
	if r == nil {
		return
	}
	for _, n := range r.needles {
		clear(n.value)
	}
	r.needles = nil
}

// Writer returns a writer that redacts each Write call's bytes before passing them to w. A
// secret split across two Write calls is not found: it suits writers that receive whole
// lines or messages per call (the audit log, a log handler, cordon's own messages).
func (r *Redactor) Writer(w io.Writer) io.Writer {
	if r.Empty() {
		return w
	}
	return &redactWriter{r: r, w: w}
}

type redactWriter struct {
	r *Redactor
	w io.Writer
}

func (rw *redactWriter) Write(p []byte) (int, error) {
	if _, err := rw.w.Write(rw.r.Bytes(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Handler returns a slog.Handler that redacts the message and every attribute value (as
// text) before passing the record to h.
func (r *Redactor) Handler(h slog.Handler) slog.Handler {
	if r.Empty() {
		return h
	}
	return &redactHandler{r: r, h: h}
}

type redactHandler struct {
	r *Redactor
	h slog.Handler
}

func (rh *redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return rh.h.Enabled(ctx, l) }

func (rh *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, rh.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(rh.attr(a))
		return true
	})
	return rh.h.Handle(ctx, out)
}

func (rh *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = rh.attr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindString:
		return slog.String(a.Key, rh.r.String(v.String()))
	case slog.KindAny:
		s := fmt.Sprint(v.Any())
		if rh.r.Contains(s) {
			return slog.String(a.Key, rh.r.String(s))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (rh *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = rh.attr(a)
	}
	return &redactHandler{r: rh.r, h: rh.h.WithAttrs(out)}
}

func (rh *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{r: rh.r, h: rh.h.WithGroup(name)}
}
