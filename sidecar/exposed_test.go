package sidecar

import "testing"

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:15001", true},
		{"127.0.1.100:15001", true},
		{"[::1]:15000", true},
		{"localhost:15000", true},
		{"127.0.1.200", true},
		{"0.0.0.0:15001", false},
		{"[::]:15001", false},
		{":15001", false},
		{"10.0.0.7:15001", false},
		{"198.18.0.2", false},
		{"[::ffff:10.0.0.7]:15001", false},
		{"example.com:15001", false},
	}
	for _, tt := range tests {
		if got := isLoopback(tt.addr); got != tt.want {
			t.Errorf("isLoopback(%q) = %t, want %t", tt.addr, got, tt.want)
		}
	}
}
