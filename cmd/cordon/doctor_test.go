package main

import (
	"strings"
	"testing"
)

func TestDoctor(t *testing.T) {
	dir := t.TempDir()
	code, out, _ := cli(t, dir, "doctor", "--mode", "fallback")
	for _, want := range []string{"machine:", "landlock", "seccomp", "user namespaces", "process limit", "policy (", "mode "} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "mode             fallback") != (code == 0) && !strings.Contains(out, "refused") {
		t.Errorf("exit %d does not match the output:\n%s", code, out)
	}
	if code == 0 && !strings.Contains(out, "weaker") {
		t.Errorf("a fallback run does not name what is weaker:\n%s", out)
	}
	if code, _, stderr := cli(t, dir, "doctor", "extra"); code != 125 || !strings.Contains(stderr, "unexpected argument") {
		t.Errorf("doctor extra: exit %d, %q", code, stderr)
	}
}
