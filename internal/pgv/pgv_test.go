package pgv

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"

	// Everything the sidecar and the gateway decode, registered.
	_ "github.com/fedmesh/fedmesh/internal/xdsresource"
)

// generated is what go-control-plane's generated code answers for m.
func generated(m proto.Message) (error, bool) {
	v, ok := m.(interface{ ValidateAll() error })
	if !ok {
		return nil, false
	}
	return v.ValidateAll(), true
}

// same fails t unless Validate and the generated ValidateAll agree on m:
// both nil or both the same text.
func same(t *testing.T, what string, m proto.Message) {
	t.Helper()
	want, _ := generated(m)
	got := Validate(m)
	switch {
	case (want == nil) != (got == nil):
		t.Errorf("%s: Validate = %v, ValidateAll = %v\n%v", what, got, want, m)
	case want != nil && got.Error() != want.Error():
		t.Errorf("%s: Validate says\n\t%v\nValidateAll says\n\t%v", what, got, want)
	}
}

// The messages with rules are exactly those with generated validation.
func TestHasRulesMatchesGenerated(t *testing.T) {
	n := 0
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		_, gen := generated(mt.New().Interface())
		if got := hasRules(mt.Descriptor()); got != gen {
			t.Errorf("%s: hasRules %v, generated ValidateAll %v", mt.Descriptor().FullName(), got, gen)
		}
		if gen {
			n++
		}
		return true
	})
	if n < 500 {
		t.Fatalf("only %d message types with generated validation registered", n)
	}
}

// golden reads the control plane's golden snapshots: real clusters,
// endpoints, listeners, routes and secrets, typed configs inside.
func golden(t testing.TB) []proto.Message {
	t.Helper()
	files, err := filepath.Glob("../../controlplane/xds/testdata/out/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden snapshots: %v", err)
	}
	kinds := map[string]func() proto.Message{
		"clusters":  func() proto.Message { return &clusterv3.Cluster{} },
		"endpoints": func() proto.Message { return &endpointv3.ClusterLoadAssignment{} },
		"listeners": func() proto.Message { return &listenerv3.Listener{} },
		"routes":    func() proto.Message { return &routev3.RouteConfiguration{} },
		"secrets":   func() proto.Message { return &tlsv3.Secret{} },
	}
	var out []proto.Message
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string][]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for kind, items := range doc {
			mk := kinds[kind]
			if mk == nil {
				continue
			}
			for _, it := range items {
				j, err := yaml.Marshal(it)
				if err == nil {
					j, err = yaml.YAMLToJSON(j)
				}
				if err != nil {
					t.Fatal(err)
				}
				m := mk()
				if err := protojson.Unmarshal(j, m); err != nil {
					t.Fatalf("%s %s: %v", f, kind, err)
				}
				out = append(out, m)
			}
		}
	}
	return out
}

// withTypedConfigs returns m and every message packed in an Any inside
// it, unpacked (HTTP connection managers, RBAC filters, TLS contexts ...).
func withTypedConfigs(t testing.TB, m proto.Message) []proto.Message {
	out := []proto.Message{m}
	var walk func(protoreflect.Message)
	walk = func(msg protoreflect.Message) {
		if a, ok := msg.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				t.Fatalf("unpack %s: %v", a.TypeUrl, err)
			}
			out = append(out, withTypedConfigs(t, inner)...)
			return
		}
		eachMessage(msg, walk)
	}
	eachMessage(m.ProtoReflect(), walk)
	return out
}

// eachMessage calls f with every message set directly in m: message
// fields, list items and map values.
func eachMessage(m protoreflect.Message, f func(protoreflect.Message)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				var keys []protoreflect.MapKey
				v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
					keys = append(keys, k)
					return true
				})
				slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return compareKeys(a.Value(), b.Value()) })
				for _, k := range keys {
					f(v.Map().Get(k).Message())
				}
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					f(v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			f(v.Message())
		}
		return true
	})
}

// nodes lists m and every message inside it (Anys not opened), in
// pre-order.
func nodes(m protoreflect.Message) []protoreflect.Message {
	out := []protoreflect.Message{m}
	eachMessage(m, func(c protoreflect.Message) { out = append(out, nodes(c)...) })
	return out
}

// mutations are the edits tried on each field of each message: values at
// and beyond the rules' edges.
func mutations(m protoreflect.Message, fd protoreflect.FieldDescriptor) []func() {
	set := func(v protoreflect.Value) func() { return func() { m.Set(fd, v) } }
	clear := func() { m.Clear(fd) }
	switch {
	case fd.IsMap():
		return []func(){clear}
	case fd.IsList():
		fs := []func(){clear}
		if fd.Message() != nil {
			fs = append(fs, func() { l := m.Mutable(fd).List(); l.Append(l.NewElement()) })
		} else {
			fs = append(fs, func() { l := m.Mutable(fd).List(); l.Append(l.NewElement()); l.Append(l.NewElement()) })
		}
		return fs
	case fd.Message() != nil:
		return []func(){clear, func() { m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message())) }}
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return []func(){set(protoreflect.ValueOfString("")), set(protoreflect.ValueOfString("a\x00b\n")), set(protoreflect.ValueOfString(strings.Repeat("x", 300))), set(protoreflect.ValueOfString("Bad Header:"))}
	case protoreflect.BytesKind:
		return []func(){set(protoreflect.ValueOfBytes(nil)), set(protoreflect.ValueOfBytes(make([]byte, 300)))}
	case protoreflect.BoolKind:
		return []func(){set(protoreflect.ValueOfBool(!m.Get(fd).Bool()))}
	case protoreflect.EnumKind:
		return []func(){set(protoreflect.ValueOfEnum(0)), set(protoreflect.ValueOfEnum(99999))}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return []func(){set(protoreflect.ValueOfInt32(0)), set(protoreflect.ValueOfInt32(-1)), set(protoreflect.ValueOfInt32(1 << 30))}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return []func(){set(protoreflect.ValueOfInt64(0)), set(protoreflect.ValueOfInt64(-1)), set(protoreflect.ValueOfInt64(1 << 40))}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return []func(){set(protoreflect.ValueOfUint32(0)), set(protoreflect.ValueOfUint32(1)), set(protoreflect.ValueOfUint32(1 << 31))}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return []func(){set(protoreflect.ValueOfUint64(0)), set(protoreflect.ValueOfUint64(1 << 40))}
	case protoreflect.FloatKind:
		return []func(){set(protoreflect.ValueOfFloat32(0)), set(protoreflect.ValueOfFloat32(-1)), set(protoreflect.ValueOfFloat32(150))}
	case protoreflect.DoubleKind:
		return []func(){set(protoreflect.ValueOfFloat64(0)), set(protoreflect.ValueOfFloat64(-1)), set(protoreflect.ValueOfFloat64(150))}
	}
	return nil
}

// Validate agrees with ValidateAll on every golden resource and typed
// config, and on each of them with every field of every message inside
// cleared or set to values at and beyond its rules' edges.
func TestMatchesGenerated(t *testing.T) {
	var roots []proto.Message
	for _, r := range golden(t) {
		roots = append(roots, withTypedConfigs(t, r)...)
	}
	if len(roots) < 100 {
		t.Fatalf("only %d golden resources", len(roots))
	}
	tried, invalid := 0, 0
	// Each edit of each field of each message type once (per root
	// type), which keeps the test quick under -race.
	type edit struct {
		root, msg protoreflect.FullName
		field, k  int
	}
	done := map[edit]bool{}
	for _, root := range roots {
		name := string(root.ProtoReflect().Descriptor().FullName())
		same(t, name, root)
		for i, n := range nodes(root.ProtoReflect()) {
			fields := n.Descriptor().Fields()
			for j := 0; j < fields.Len(); j++ {
				for k := range mutations(n, fields.Get(j)) {
					e := edit{root.ProtoReflect().Descriptor().FullName(), n.Descriptor().FullName(), j, k}
					if done[e] {
						continue
					}
					done[e] = true
					c := proto.Clone(root)
					cn := nodes(c.ProtoReflect())[i]
					mutations(cn, cn.Descriptor().Fields().Get(j))[k]()
					same(t, name+" with "+string(cn.Descriptor().FullName())+"."+string(fields.Get(j).Name())+" changed", c)
					tried++
					if Validate(c) != nil {
						invalid++
					}
				}
			}
		}
	}
	// The mutations must reach the rules, or the comparison proves little.
	if invalid < tried/20 {
		t.Fatalf("only %d of %d mutations invalid", invalid, tried)
	}
	t.Logf("%d resources, %d mutations, %d invalid", len(roots), tried, invalid)
}

// The error names the message, the field and the rule, as the xDS
// client's NACK reports it.
func TestErrorText(t *testing.T) {
	c := &clusterv3.Cluster{Name: "a", ConnectTimeout: durationpb.New(-1)}
	err := Validate(c)
	if err == nil || !strings.HasPrefix(err.Error(), "invalid Cluster.ConnectTimeout: value must be greater than 0s") {
		t.Fatalf("Validate(%v) = %v", c, err)
	}
	if Validate(&clusterv3.Cluster{Name: "a"}) != nil {
		t.Fatal("a cluster with a name is valid")
	}
	if Validate(nil) != nil {
		t.Fatal("nil is valid")
	}
}

// FuzzValidate decodes arbitrary bytes as each type the data plane
// decodes and checks Validate against ValidateAll.
func FuzzValidate(f *testing.F) {
	for _, r := range golden(f) {
		for _, m := range withTypedConfigs(f, r) {
			b, err := proto.Marshal(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	types := []func() proto.Message{
		func() proto.Message { return &clusterv3.Cluster{} },
		func() proto.Message { return &endpointv3.ClusterLoadAssignment{} },
		func() proto.Message { return &listenerv3.Listener{} },
		func() proto.Message { return &routev3.RouteConfiguration{} },
		func() proto.Message { return &tlsv3.Secret{} },
		func() proto.Message { return &hcmv3.HttpConnectionManager{} },
		func() proto.Message { return &tcpv3.TcpProxy{} },
		func() proto.Message { return &httprbacv3.RBAC{} },
		func() proto.Message { return &netrbacv3.RBAC{} },
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, mk := range types {
			m := mk()
			if proto.Unmarshal(b, m) != nil {
				continue
			}
			same(t, string(m.ProtoReflect().Descriptor().FullName()), m)
		}
	})
}
