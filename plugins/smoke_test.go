package plugins

import (
	"context"
	"testing"
)

func TestSmoke(t *testing.T) {
	h, logs := newTestHost(t)
	p := load(t, h, PluginConfig{Path: guest(t, faultyGuest), Secrets: map[string][]byte{"canary": []byte("s3cr3t-canary")}})
	req := newReq(t, "GET", "https://api.example.com/x?y=1", "X-Test-Mode: echo", "X-In: a", "X-In: b")
	res, err := p.Apply(context.Background(), req)
	t.Logf("res=%+v err=%v", res, err)
	t.Logf("headers=%v", req.Header)
	t.Logf("logs=%s", logs)
}
