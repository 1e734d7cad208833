package xdsresource

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Resource is one xDS resource (a generated Envoy message).
type Resource = types.Resource

// Any wraps m for a typed_config field. It panics only for a message that
// cannot be marshalled, which generated Envoy types always can.
func Any(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// ADS is the config source of every resource fedmesh sends: the
// aggregated stream, API version 3.
func ADS() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// SocketAddress is host:port as an Envoy address.
func SocketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// ALPN returns the ALPN protocols of a service port: h2 then http/1.1
// for HTTP ports, none for opaque TCP.
func ALPN(http bool) []string {
	if http {
		return []string{"h2", "http/1.1"}
	}
	return nil
}
