package config_test

import (
	"errors"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/authz"
	"github.com/fedmesh/fedmesh/sidecar/config"
	mt "github.com/fedmesh/fedmesh/sidecar/internal/meshtest"
)

// inboundUpdates splits InboundAuthz's resources into the CDS and LDS
// updates of a sidecar.
func inboundUpdates(ver string, res []types.Resource) (cds, lds xdsclient.Update) {
	return update(xdsclient.ClusterType, ver, res[1:]...), update(xdsclient.ListenerType, ver, res[0])
}

func applyAll(t *testing.T, b *config.Builder, us ...xdsclient.Update) (*config.Snapshot, error) {
	t.Helper()
	var snap *config.Snapshot
	for _, u := range us {
		var err error
		if snap, err = b.Apply(u); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

func TestInboundAuthzShapes(t *testing.T) {
	web := naming.ServicePort{Namespace: "demo", Name: "web", Port: 8080}
	rpc := naming.ServicePort{Namespace: "demo", Name: "rpc", Port: 9090}
	db := naming.ServicePort{Namespace: "demo", Name: "db", Port: 5432}
	old := naming.ServicePort{Namespace: "demo", Name: "old", Port: 7000}
	deny := mt.Policies{"ns[demo]-policy[no-admin]-rule[0]": mt.Policy([]mt.Permission{mt.Path(mt.Prefix("/admin"))}, []mt.Principal{mt.AnyPrincipal()})}
	allow := mt.Policies{"ns[demo]-policy[web]-rule[1]": mt.Policy([]mt.Permission{mt.AnyPermission()}, []mt.Principal{mt.PrincipalName(mt.Exact("spiffe://fed.test/ns/web/sa/frontend"))})}
	res := mt.InboundAuthz("127.0.0.1:15006",
		mt.AuthzPort{InboundPort: mt.InboundPort{SP: web, App: "127.0.0.1:8080", HTTP: true}, Authz: &mt.Authz{Deny: deny, Allow: allow}},
		mt.AuthzPort{InboundPort: mt.InboundPort{SP: rpc, App: "127.0.0.1:9090", GRPC: true}, Authz: &mt.Authz{DefaultDeny: true}},
		mt.AuthzPort{InboundPort: mt.InboundPort{SP: db, App: "127.0.0.1:5432"}, Authz: &mt.Authz{Allow: allow}},
		mt.AuthzPort{InboundPort: mt.InboundPort{SP: old, App: "127.0.0.1:7000", HTTP: true}},
	)
	cds, lds := inboundUpdates("1", res)
	snap, err := applyAll(t, config.NewBuilder(td), cds, lds)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Inbound) != 1 {
		t.Fatalf("%d inbound listeners, want 1", len(snap.Inbound))
	}
	type view struct {
		App        string
		Protocol   config.Protocol
		Connection []string // ACTION:policy,...
		Request    []string
	}
	show := func(e *authz.Engine) []string {
		var out []string
		for _, f := range e.Filters() {
			out = append(out, f.Action().String()+":"+strings.Join(f.Policies(), ","))
		}
		return out
	}
	got := map[string]view{}
	for sni, p := range snap.Inbound[0].Ports {
		v := view{App: p.App, Protocol: p.Protocol}
		if p.Authz != nil {
			v.Connection, v.Request = show(p.Authz.Connection), show(p.Authz.Request)
		}
		got[sni] = v
	}
	want := map[string]view{
		web.SNI(): {App: "127.0.0.1:8080", Protocol: config.HTTP, Request: []string{"DENY:ns[demo]-policy[no-admin]-rule[0]", "ALLOW:ns[demo]-policy[web]-rule[1]"}},
		rpc.SNI(): {App: "127.0.0.1:9090", Protocol: config.GRPC, Request: []string{"ALLOW:"}},
		db.SNI():  {App: "127.0.0.1:5432", Protocol: config.TCP, Connection: []string{"ALLOW:ns[demo]-policy[web]-rule[1]"}},
		old.SNI(): {App: "127.0.0.1:7000", Protocol: config.HTTP},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inbound ports (-want +got):\n%s", diff)
	}
	// A new CDS without the db port's cluster is accepted while LDS still
	// has its chain (Envoy applies CDS before LDS): the port is not served
	// until LDS follows, and neither update is refused.
	b := config.NewBuilder(td)
	if _, err := applyAll(t, b, cds, lds); err != nil {
		t.Fatal(err)
	}
	snap2, err := b.Apply(update(xdsclient.ClusterType, "2", res[2:]...)) // res[1] is db's cluster
	if err != nil {
		t.Fatalf("CDS without a cluster LDS refers to: %v", err)
	}
	if _, ok := snap2.Inbound[0].Ports[db.SNI()]; ok {
		t.Error("a port whose cluster is gone is still served")
	}
	// The default-deny port denies even a request nothing else would.
	d := snap.Inbound[0].Ports[rpc.SNI()].Authz.Request.Authorize(&authz.Request{HTTP: true, Principal: "spiffe://fed.test/ns/a/sa/b", Method: "POST", Path: "/x.Y/Z"})
	if d.Allowed || d.Reason != authz.ReasonNoAllow {
		t.Errorf("default deny: %+v", d)
	}
}

func TestInboundAuthzRefusedKeepsLastGood(t *testing.T) {
	web := naming.ServicePort{Namespace: "demo", Name: "web", Port: 8080}
	good := mt.InboundAuthz("127.0.0.1:15006", mt.AuthzPort{InboundPort: mt.InboundPort{SP: web, App: "127.0.0.1:8080", HTTP: true}, Authz: &mt.Authz{DefaultDeny: true}})
	denyAll := mt.Policies{"q": mt.Policy([]mt.Permission{mt.AnyPermission()}, []mt.Principal{mt.AnyPrincipal()})}
	withDenyAll := func(http bool) *listenerv3.Listener {
		res := mt.InboundAuthz("127.0.0.1:15006", mt.AuthzPort{InboundPort: mt.InboundPort{SP: web, App: "127.0.0.1:8080", HTTP: http}, Authz: &mt.Authz{Deny: denyAll}})
		return res[0].(*listenerv3.Listener)
	}
	withRemoteIP := func(http bool) *listenerv3.Listener {
		l := withDenyAll(http)
		if !mt.AddUnsupportedPolicy(l, rbacv3.RBAC_DENY, "p") {
			t.Fatal("no DENY filter to add to")
		}
		return l
	}
	// An extra filter after the terminal one.
	afterTerminal := withDenyAll(false)
	fc := afterTerminal.FilterChains[0]
	fc.Filters = append(fc.Filters, fc.Filters[0])
	tests := []struct {
		name    string
		l       *listenerv3.Listener
		want    string
		isAuthz bool
	}{
		{name: "http: unsupported principal", l: withRemoteIP(true), isAuthz: true,
			want: `http filter 0 "envoy.filters.http.rbac": authorization: rules.policies["p"].principals[0]: unsupported RBAC field "remote_ip"`},
		{name: "tcp: unsupported principal", l: withRemoteIP(false), isAuthz: true,
			want: `filter 0 "envoy.filters.network.rbac": authorization: rules.policies["p"].principals[0]: unsupported RBAC field "remote_ip"`},
		{name: "filter after tcp_proxy", l: afterTerminal, want: "follows the chain's terminal filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := config.NewBuilder(td)
			cds, lds := inboundUpdates("1", good)
			before, err := applyAll(t, b, cds, lds)
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Apply(update(xdsclient.ListenerType, "2", tt.l))
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply() error = %v, want ErrInvalid containing %q", err, tt.want)
			}
			if errors.Is(err, config.ErrAuthz) != tt.isAuthz || errors.Is(err, authz.ErrUnsupported) != tt.isAuthz {
				t.Errorf("error %v: ErrAuthz/ErrUnsupported = %v, want %v", err, errors.Is(err, config.ErrAuthz), tt.isAuthz)
			}
			if b.Current() != before {
				t.Error("a rejected update changed the current snapshot")
			}
		})
	}
}

// FuzzInboundListener feeds arbitrary bytes as the inbound listener: Apply
// either refuses it, keeping the snapshot it had, or accepts it, and never
// panics.
func FuzzInboundListener(f *testing.F) {
	web := naming.ServicePort{Namespace: "demo", Name: "web", Port: 8080}
	db := naming.ServicePort{Namespace: "demo", Name: "db", Port: 5432}
	allow := mt.Policies{"ns[demo]-policy[web]-rule[1]": mt.Policy([]mt.Permission{mt.Method("GET")}, []mt.Principal{mt.PeerCluster(mt.Exact("east-1"))})}
	res := mt.InboundAuthz("127.0.0.1:15006",
		mt.AuthzPort{InboundPort: mt.InboundPort{SP: web, App: "127.0.0.1:8080", HTTP: true}, Authz: &mt.Authz{Audit: allow, Allow: allow}},
		mt.AuthzPort{InboundPort: mt.InboundPort{SP: db, App: "127.0.0.1:5432"}, Authz: &mt.Authz{Deny: allow}})
	cds, lds := inboundUpdates("1", res)
	seed, err := proto.Marshal(res[0])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var l listenerv3.Listener
		if proto.Unmarshal(b, &l) != nil {
			return
		}
		bld := config.NewBuilder(td)
		before, err := applyAll(t, bld, cds, lds)
		if err != nil {
			t.Fatal(err)
		}
		l.Name = "inbound|127.0.0.1:15006"
		if _, err := bld.Apply(update(xdsclient.ListenerType, "2", &l)); err != nil && bld.Current() != before {
			t.Fatal("a refused listener changed the snapshot")
		}
	})
}
