package main

import (
	"context"
	"strings"
	"testing"
)

func TestDashboardCmdUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "a listen address off loopback", args: []string{"dashboard", "--admin", "http://127.0.0.1:15014", "--listen", "0.0.0.0:8080"}, code: 2, want: "loopback addresses only"},
		{name: "a listen address without port", args: []string{"dashboard", "--admin", "http://127.0.0.1:15014", "--listen", "127.0.0.1"}, code: 2, want: "--listen"},
		{name: "an admin URL that is not http(s)", args: []string{"dashboard", "--admin", "ftp://127.0.0.1:15014"}, code: 2, want: "is not an http(s) URL"},
		{name: "no operator certificate", args: []string{"dashboard", "--admin", "https://127.0.0.1:15014", "--operator-dir", "/nonexistent"}, code: 1, want: "no operator certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runCmd(context.Background(), t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d naming %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}
