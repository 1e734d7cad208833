package proxy

import (
	"testing"

	"github.com/fedmesh/fedmesh/sidecar/config"
)

func TestAppSpeaksH2C(t *testing.T) {
	tests := []struct {
		name        string
		proto       config.Protocol
		contentType string
		want        bool
	}{
		{name: "grpc port", proto: config.GRPC, contentType: "application/json", want: true},
		{name: "grpc port without content type", proto: config.GRPC, want: true},
		{name: "http port, plain http", proto: config.HTTP, contentType: "text/plain", want: false},
		{name: "http port, no content type", proto: config.HTTP, want: false},
		{name: "http port, grpc", proto: config.HTTP, contentType: "application/grpc", want: true},
		{name: "http port, grpc+proto", proto: config.HTTP, contentType: "application/grpc+proto", want: true},
		{name: "http port, grpc with parameters", proto: config.HTTP, contentType: "application/grpc; charset=utf-8", want: true},
		{name: "http port, grpc in upper case", proto: config.HTTP, contentType: "Application/GRPC", want: true},
		{name: "http port, grpc-web stays on HTTP/1.1", proto: config.HTTP, contentType: "application/grpc-web+proto", want: false},
		{name: "http port, grpc-web-text", proto: config.HTTP, contentType: "application/grpc-web-text", want: false},
		{name: "http port, a look-alike", proto: config.HTTP, contentType: "application/grpcx", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := appSpeaksH2C(tt.proto, tt.contentType); got != tt.want {
				t.Errorf("appSpeaksH2C(%q, %q) = %v, want %v", tt.proto, tt.contentType, got, tt.want)
			}
		})
	}
}
