package plugins

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Guest log lines are rate-limited per plugin: a burst of logBurst, then logPerSecond.
const (
	logBurst     = 50
	logPerSecond = 10
)

// rateLimiter is a token bucket that counts what it drops.
type rateLimiter struct {
	mu      sync.Mutex
	tokens  float64
	burst   float64
	rate    float64
	last    time.Time
	dropped int
	now     func() time.Time
}

func newRateLimiter(burst, perSecond float64) *rateLimiter {
	return &rateLimiter{tokens: burst, burst: burst, rate: perSecond, now: time.Now}
}

// allow reports whether one more line may be logged, and how many were dropped since the
// last line that was.
func (r *rateLimiter) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !r.last.IsZero() {
		r.tokens = min(r.burst, r.tokens+now.Sub(r.last).Seconds()*r.rate)
	}
	r.last = now
	if r.tokens < 1 {
		r.dropped++
		return false, 0
	}
	r.tokens--
	d := r.dropped
	r.dropped = 0
	return true, d
}

// guestLog logs a line the guest wrote, with secrets and secret-derived values redacted.
// c is the call it was written in, or nil during initialization.
func (p *Plugin) guestLog(level slog.Level, text string, c *call, source string) {
	if !p.logger.Enabled(context.Background(), level) {
		return
	}
	if c != nil {
		text = c.scrub(text)
	} else {
		text = p.scrubSecrets(text)
	}
	ok, dropped := p.limiter.allow()
	if !ok {
		return
	}
	attrs := []any{"source", source, "text", text}
	if dropped > 0 {
		attrs = append(attrs, "suppressed", dropped)
	}
	p.logger.Log(context.Background(), level, "plugin output", attrs...)
}

// guestOutput receives the guest's stdout and stderr (a Go guest prints panics there) and
// logs them line by line. It remembers the first line of a crash for the call's error.
type guestOutput struct {
	p     *Plugin
	mu    sync.Mutex
	line  []byte
	cur   *call
	crash string
}

func newGuestOutput(p *Plugin) *guestOutput { return &guestOutput{p: p} }

func (o *guestOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := indexNewline(b)
		if i < 0 {
			room := maxLogLen - len(o.line)
			if len(b) < room {
				o.line = append(o.line, b...)
				break
			}
			o.line = append(o.line, b[:room]...)
			b = b[room:]
			o.emit()
			continue
		}
		o.line = append(o.line, b[:min(i, max(0, maxLogLen-len(o.line)))]...)
		b = b[i+1:]
		o.emit()
	}
	return n, nil
}

func indexNewline(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

func (o *guestOutput) emit() {
	s := sanitize(string(o.line))
	o.line = o.line[:0]
	if strings.TrimSpace(s) == "" {
		return
	}
	if o.crash == "" && (strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: ") || strings.Contains(s, "out of memory")) {
		o.crash = s
	}
	o.p.guestLog(slog.LevelWarn, s, o.cur, "stderr")
}

// begin and end bracket a call.
func (o *guestOutput) begin(c *call) {
	o.mu.Lock()
	o.cur, o.crash = c, ""
	o.mu.Unlock()
}

// end flushes a partial line and returns the crash line seen during the call, redacted.
func (o *guestOutput) end() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.line) > 0 {
		o.emit()
	}
	crash := o.crash
	if o.cur != nil {
		crash = o.cur.scrub(crash)
	}
	o.cur, o.crash = nil, ""
	return crash
}

// crashLine returns the crash line seen outside a call (during initialization).
func (o *guestOutput) crashLine() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.line) > 0 {
		o.emit()
	}
	return o.p.scrubSecrets(o.crash)
}
