package main

import "testing"

func TestLoopbackFor(t *testing.T) {
	tests := []struct{ address, want string }{
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.1.100", "127.0.1.100"}, // local mode: the workload's own loopback address
		{"::1", "::1"},
		{"10.244.1.7", "127.0.0.1"}, // a pod IP
		{"198.18.0.2", "127.0.0.1"},
		{"fd00::7", "::1"},
	}
	for _, tt := range tests {
		if got := loopbackFor(tt.address); got != tt.want {
			t.Errorf("loopbackFor(%q) = %q, want %q", tt.address, got, tt.want)
		}
	}
}
