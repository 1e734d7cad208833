package proxycmd

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

// --bind-outbound is on by default only for a loopback address of the
// workload's own (local mode).
func TestOwnLoopback(t *testing.T) {
	for address, want := range map[string]bool{
		"127.0.1.100": true, "127.0.0.13": true, "::ffff:127.0.1.1": true,
		"127.0.0.1": false, "::1": false, "10.244.1.7": false, "198.18.0.2": false, "fd00::7": false, "x": false,
	} {
		if got := ownLoopback(address); got != want {
			t.Errorf("ownLoopback(%q) = %v, want %v", address, got, want)
		}
	}
}
