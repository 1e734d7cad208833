package config

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestUpstreamHTTP2(t *testing.T) {
	options := func(o *upstreamhttpv3.HttpProtocolOptions) *clusterv3.Cluster {
		a, err := anypb.New(o)
		if err != nil {
			t.Fatal(err)
		}
		return &clusterv3.Cluster{TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: a}}
	}
	explicit := func(cfg *upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig) *clusterv3.Cluster {
		return options(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: cfg},
		})
	}
	notOptions, err := anypb.New(&corev3.Http1ProtocolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		c       *clusterv3.Cluster
		want    bool
		wantErr bool
	}{
		{name: "no options", c: &clusterv3.Cluster{}},
		{name: "explicit HTTP/2", c: explicit(&upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}), want: true},
		{name: "explicit HTTP/1.1", c: explicit(&upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		})},
		{name: "another message under the key", c: &clusterv3.Cluster{TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: notOptions}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := upstreamHTTP2(tt.c)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("upstreamHTTP2() = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
