package xdsresource

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// GatewaySourceClustersKey is the field of the gateway listener's
// metadata (filter_metadata "fedmesh") that maps each federation member
// to the addresses and prefixes its traffic comes from: {"west-1":
// ["198.18.2.0/24", "127.0.2.1"], ...}. The gateway labels connections
// from them with that member's name (docs/telemetry.md).
const GatewaySourceClustersKey = "source_clusters"

// WithGatewaySourceClusters sets the source clusters of a gateway
// listener (cluster name -> addresses or CIDR prefixes) and returns l.
func WithGatewaySourceClusters(l *listenerv3.Listener, sources map[string][]string) *listenerv3.Listener {
	f := map[string]*structpb.Value{}
	for cluster, addrs := range sources {
		vs := make([]*structpb.Value, 0, len(addrs))
		for _, a := range addrs {
			vs = append(vs, structpb.NewStringValue(a))
		}
		f[cluster] = structpb.NewListValue(&structpb.ListValue{Values: vs})
	}
	if l.Metadata == nil {
		l.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	}
	if l.Metadata.FilterMetadata == nil {
		l.Metadata.FilterMetadata = map[string]*structpb.Struct{}
	}
	md := l.Metadata.FilterMetadata[naming.MetadataNamespace]
	if md == nil {
		md = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		l.Metadata.FilterMetadata[naming.MetadataNamespace] = md
	}
	md.Fields[GatewaySourceClustersKey] = structpb.NewStructValue(&structpb.Struct{Fields: f})
	return l
}
