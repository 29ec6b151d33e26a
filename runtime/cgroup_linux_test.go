package runtime

import "testing"

func TestCgroupOwner(t *testing.T) {
	for _, tt := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"cordon-123-dn2c0u9cst2i", 123, true},
		{"cordon-123", 123, true},
		{"cordon-x-1", 0, false},
		{"other-1-2", 0, false},
		{"cordon--1", 0, false},
	} {
		pid, ok := cgroupOwner(tt.name)
		if pid != tt.pid || ok != tt.ok {
			t.Errorf("cgroupOwner(%q) = %d, %t; want %d, %t", tt.name, pid, ok, tt.pid, tt.ok)
		}
	}
}
