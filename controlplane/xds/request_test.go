package xds

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedmesh/fedmesh/internal/naming"
)

func TestCheckRequest(t *testing.T) {
	tests := []struct {
		name    string
		typeURL string
		names   []string
		reason  string
	}{
		{name: "clusters wildcard", typeURL: resourcev3.ClusterType},
		{name: "secrets by name", typeURL: resourcev3.SecretType, names: []string{naming.SecretWorkload, naming.SecretRootCA}},
		{name: "empty type", typeURL: "", reason: "type_url"},
		{name: "unserved type", typeURL: "type.googleapis.com/envoy.service.runtime.v3.Runtime", reason: "type_url"},
		{name: "v2 type", typeURL: "type.googleapis.com/envoy.api.v2.Cluster", reason: "type_url"},
		{name: "long name", typeURL: resourcev3.EndpointType, names: []string{strings.Repeat("a", maxResourceName+1)}, reason: "resource_names"},
		{name: "invalid UTF-8", typeURL: resourcev3.EndpointType, names: []string{"ok", "\xff"}, reason: "resource_names"},
		{name: "too many names", typeURL: resourcev3.EndpointType, names: make([]string, maxResourceNames+1), reason: "resource_names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, err := checkRequest(tt.typeURL, tt.names)
			if reason != tt.reason || (err != nil) != (tt.reason != "") {
				t.Errorf("checkRequest = %q, %v; want reason %q", reason, err, tt.reason)
			}
		})
	}
}

// FuzzOnRequest feeds arbitrary nodes, type URLs and resource names to a
// stream's request check, the way the stream server does: first request,
// a later one, then the stream closes. Whatever comes in, an error is a
// gRPC status, every admitted node (gateways too) holds one reference to
// its identity's certificate, only a gateway identity is admitted as a
// gateway, and a closed stream leaves nothing behind.
func FuzzOnRequest(f *testing.F) {
	f.Add("sidecar~1", naming.RoleSidecar, "demo", "client", "client", "tok-client", resourcev3.ClusterType, "", resourcev3.SecretType, naming.SecretWorkload)
	f.Add("proxyless~1", naming.RoleProxyless, "demo", "client", "client", "tok-client", resourcev3.ListenerType, "echo:50051", resourcev3.SecretType, naming.SecretWorkload)
	f.Add("gateway~1", naming.RoleGateway, "fedmesh-system", "gateway", "gateway", "tok-gw", resourcev3.ListenerType, "gateway", resourcev3.ClusterType, "x")
	f.Add("gateway~2", naming.RoleGateway, "demo", "client", "client", "tok-client", resourcev3.ListenerType, "gateway", "", "")
	f.Add("n", "admin", "", "", "", "", "type.googleapis.com/x", "\xff", "", "")
	srv, err := NewServer(Config{
		Cluster:       "east-1",
		Settings:      DefaultSettings(testTD),
		Authenticator: TokenAuthenticator(verifyToken),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatal(err)
	}
	var next int64
	f.Fuzz(func(t *testing.T, id, role, ns, sa, workload, token, typeURL, name, typeURL2, name2 string) {
		next++
		streamID := streamID{id: next, delta: next%2 == 0}
		n := Node{ID: id, Role: role, Cluster: "east-1", Namespace: ns, ServiceAccount: sa, Workload: workload,
			Token: token, Locality: locEast1}
		pn := pbNode(n)
		srv.openStream(context.Background(), streamID)
		err1 := srv.onRequest(streamID, pn, typeURL, []string{name})
		var err2 error
		if err1 == nil {
			err2 = srv.onRequest(streamID, nil, typeURL2, []string{name2})
		}
		for _, err := range []error{err1, err2} {
			if err == nil {
				continue
			}
			if s, ok := status.FromError(err); !ok || s.Code() == codes.OK || s.Code() == codes.Internal {
				t.Fatalf("request error %v is not a refusal status", err)
			}
		}
		srv.mu.Lock()
		st := srv.streams[streamID]
		authed := st.node != nil
		if authed && (st.node.certs == nil || st.node.certs.nodes != 1 || len(srv.identities) != 1) {
			t.Errorf("a %s node holds no single reference to its identity's certificate", st.node.node.Role)
		}
		if authed && st.node.node.Role == naming.RoleGateway && (st.node.id.Namespace != "fedmesh-system" || st.node.id.ServiceAccount != "gateway") {
			t.Errorf("identity %s/%s admitted as gateway", st.node.id.Namespace, st.node.id.ServiceAccount)
		}
		srv.mu.Unlock()
		if err1 == nil && !authed {
			t.Fatal("first request accepted without authenticating")
		}
		srv.closeStream(streamID)
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.streams) != 0 || len(srv.nodes) != 0 || len(srv.identities) != 0 {
			t.Fatalf("after close: %d streams, %d nodes, %d identities", len(srv.streams), len(srv.nodes), len(srv.identities))
		}
	})
}
