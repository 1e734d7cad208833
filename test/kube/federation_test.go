package kube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	mcsv1alpha1 "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/clusterset"
	"github.com/fedmesh/fedmesh/controlplane/kube"
	"github.com/fedmesh/fedmesh/internal/poll"
	"github.com/fedmesh/fedmesh/topology"
)

const (
	ns          = "demo"
	convergence = 60 * time.Second
)

func ptr[T any](v T) *T { return &v }

// objects creates objects in one cluster through its clients.
type objects struct {
	t *testing.T
	c kube.Clients
}

func (o objects) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	o.t.Cleanup(cancel)
	return ctx
}

func (o objects) namespace(name string) {
	o.t.Helper()
	_, err := o.c.Kube.CoreV1().Namespaces().Create(o.ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		o.t.Fatal(err)
	}
}

func (o objects) node(name, region, zone string) {
	o.t.Helper()
	_, err := o.c.Kube.CoreV1().Nodes().Create(o.ctx(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{corev1.LabelTopologyRegion: region, corev1.LabelTopologyZone: zone},
	}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		o.t.Fatal(err)
	}
}

func (o objects) pod(name, sa, node string) {
	o.t.Helper()
	_, err := o.c.Kube.CoreV1().Pods(ns).Create(o.ctx(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "echo"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			NodeName:           node,
			Containers:         []corev1.Container{{Name: "app", Image: "registry.example/echo:1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		o.t.Fatal(err)
	}
}

// service creates a Service with one port named http.
func (o objects) service(name string, port, target int32) {
	o.t.Helper()
	_, err := o.c.Kube.CoreV1().Services(ns).Create(o.ctx(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{
				Name: "http", Port: port, TargetPort: intstr.FromInt32(target), AppProtocol: ptr("http"),
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		o.t.Fatal(err)
	}
}

// slice creates the EndpointSlice a controller-manager would: one
// endpoint per address, without a zone (the node's label gives it).
func (o objects) slice(service string, target int32, node string, pods map[string]string) {
	o.t.Helper()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: service + "-x1", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "test"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(target), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	addrs := make([]string, 0, len(pods))
	for a := range pods {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a},
			NodeName:   ptr(node),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pods[a]},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
		})
	}
	if _, err := o.c.Kube.DiscoveryV1().EndpointSlices(ns).Create(o.ctx(), es, metav1.CreateOptions{}); err != nil {
		o.t.Fatal(err)
	}
}

func (o objects) export(name string) {
	o.t.Helper()
	_, err := o.c.MCS.MulticlusterV1alpha1().ServiceExports(ns).Create(o.ctx(),
		&mcsv1alpha1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, metav1.CreateOptions{})
	if err != nil {
		o.t.Fatal(err)
	}
}

// condition returns the condition of that type of a ServiceExport.
func (o objects) condition(name, typ string) (*metav1.Condition, error) {
	se, err := o.c.MCS.MulticlusterV1alpha1().ServiceExports(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	c := meta.FindStatusCondition(se.Status.Conditions, typ)
	if c == nil {
		return nil, fmt.Errorf("ServiceExport %s has no %s condition yet (has %v)", name, typ, se.Status.Conditions)
	}
	return c, nil
}

// wantCondition polls until the ServiceExport's condition has that status
// and reason.
func (o objects) wantCondition(name, typ string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	o.t.Helper()
	var got *metav1.Condition
	poll.Until(o.t, convergence, fmt.Sprintf("ServiceExport %s %s=%s (%s)", name, typ, status, reason), func() error {
		c, err := o.condition(name, typ)
		if err != nil {
			return err
		}
		if c.Status != status || c.Reason != reason {
			return fmt.Errorf("have %s=%s (%s): %s", typ, c.Status, c.Reason, c.Message)
		}
		got = c
		return nil
	})
	return got
}

// importOf returns the ServiceImport and its EndpointSlices.
func (o objects) importOf(name string) (*mcsv1alpha1.ServiceImport, []discoveryv1.EndpointSlice, error) {
	ctx := context.Background()
	si, err := o.c.MCS.MulticlusterV1alpha1().ServiceImports(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	list, err := o.c.Kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: mcsv1alpha1.LabelServiceName + "=" + name})
	if err != nil {
		return nil, nil, err
	}
	return si, list.Items, nil
}

// sliceView is what a test compares of an imported EndpointSlice.
type sliceView struct {
	Cluster   string
	Owner     string
	Ports     []string
	Endpoints []string
}

func viewSlices(slices []discoveryv1.EndpointSlice) []sliceView {
	var out []sliceView
	for _, es := range slices {
		v := sliceView{Cluster: es.Labels[mcsv1alpha1.LabelSourceCluster]}
		for _, o := range es.OwnerReferences {
			v.Owner = o.Kind + "/" + o.Name
		}
		for _, p := range es.Ports {
			v.Ports = append(v.Ports, fmt.Sprintf("%s:%d", *p.Name, *p.Port))
		}
		for _, e := range es.Endpoints {
			v.Endpoints = append(v.Endpoints, fmt.Sprintf("%v zone=%s ready=%t", e.Addresses, *e.Zone, *e.Conditions.Ready))
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster < out[j].Cluster })
	return out
}

func TestFederation(t *testing.T) {
	apiA, apiB := clusters(t)
	top := t // a control plane restarted in a subtest lives to the end of the test
	east := topology.Locality{Region: "us-east", Zone: "us-east-1z", Cluster: "east-1"}
	west := topology.Locality{Region: "us-west", Zone: "us-west-1z", Cluster: "west-1"}
	cpA := startControlPlane(t, apiA, east)
	cpB := startControlPlane(t, apiB, west)
	cpB.join(t, cpA)
	a := objects{t: t, c: cpA.admin}
	b := objects{t: t, c: cpB.admin}
	a.namespace(ns)
	b.namespace(ns)
	a.node("node-a1", "us-east", "us-east-1a")
	b.node("node-b1", "us-west", "us-west-1b")

	t.Run("export in one cluster is imported in the other", func(t *testing.T) {
		a, b := objects{t: t, c: a.c}, objects{t: t, c: b.c}
		a.pod("echo-1", "echo", "node-a1")
		a.pod("echo-2", "echo", "node-a1")
		a.service("echo", 8080, 9080)
		a.slice("echo", 9080, "node-a1", map[string]string{"10.1.0.5": "echo-1", "10.1.0.6": "echo-2"})
		a.export("echo")

		wantSlices := []sliceView{{
			Cluster: "east-1", Owner: "ServiceImport/echo", Ports: []string{"http:9080"},
			Endpoints: []string{"[10.1.0.5] zone=us-east-1a ready=true", "[10.1.0.6] zone=us-east-1a ready=true"},
		}}
		for _, o := range []objects{b, a} {
			var si *mcsv1alpha1.ServiceImport
			poll.Until(t, convergence, "ServiceImport demo/echo with its slices", func() error {
				var slices []discoveryv1.EndpointSlice
				var err error
				if si, slices, err = o.importOf("echo"); err != nil {
					return err
				}
				if d := cmp.Diff(wantSlices, viewSlices(slices)); d != "" {
					return fmt.Errorf("slices (-want +got):\n%s", d)
				}
				for _, es := range slices {
					if es.OwnerReferences[0].UID != si.UID {
						return fmt.Errorf("slice %s owned by %s, not the ServiceImport %s", es.Name, es.OwnerReferences[0].UID, si.UID)
					}
				}
				// The status is its own write, which may land after the
				// slices.
				if d := cmp.Diff([]mcsv1alpha1.ClusterStatus{{Cluster: "east-1"}}, si.Status.Clusters); d != "" {
					return fmt.Errorf("ServiceImport clusters (-want +got):\n%s", d)
				}
				return nil
			})
			wantSpec := mcsv1alpha1.ServiceImportSpec{
				Type:  mcsv1alpha1.ClusterSetIP,
				IPs:   []string{clusterSetIP("echo")},
				Ports: []mcsv1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, AppProtocol: ptr("http"), Port: 8080}},
			}
			if d := cmp.Diff(wantSpec, si.Spec); d != "" {
				t.Errorf("ServiceImport spec (-want +got):\n%s", d)
			}
		}
		a.wantCondition("echo", "Valid", metav1.ConditionTrue, kube.ReasonValid)
		a.wantCondition("echo", "Conflict", metav1.ConditionFalse, catalog.ReasonNoConflicts)

		// The catalog entry: pod service account and labels, node region and zone.
		exports, _, err := cpA.st.ListExports(context.Background(), "east-1")
		if err != nil {
			t.Fatal(err)
		}
		var eps []string
		for _, e := range exports {
			for _, ep := range e.Endpoints {
				eps = append(eps, fmt.Sprintf("%s:%d sa=%s %s labels=%v", ep.Address, ep.Port, ep.ServiceAccount, ep.Locality, ep.Labels))
			}
		}
		// The pods carry their node's topology labels too (the API
		// server adds them when it binds a pod), so failoverPriority
		// can name them.
		const labels = "labels=map[app:echo topology.kubernetes.io/region:us-east topology.kubernetes.io/zone:us-east-1a]"
		want := []string{"10.1.0.5:9080 sa=echo us-east/us-east-1a/east-1 " + labels, "10.1.0.6:9080 sa=echo us-east/us-east-1a/east-1 " + labels}
		if d := cmp.Diff(want, eps); d != "" {
			t.Errorf("exported endpoints (-want +got):\n%s", d)
		}
	})

	t.Run("conflicting exports get Conflict on both sides", func(t *testing.T) {
		a, b := objects{t: t, c: a.c}, objects{t: t, c: b.c}
		a.service("shared", 8080, 8080)
		a.export("shared")
		// east-1's export is older (and wins a tie by name): west-1's port
		// 9090 conflicts with it.
		poll.Until(t, convergence, "east-1's shared imported in west-1", func() error {
			_, _, err := b.importOf("shared")
			return err
		})
		b.service("shared", 9090, 9090)
		b.export("shared")
		ca := a.wantCondition("shared", "Conflict", metav1.ConditionTrue, catalog.ReasonPortConflict)
		cb := b.wantCondition("shared", "Conflict", metav1.ConditionTrue, catalog.ReasonPortConflict)
		t.Logf("east-1: %s; west-1: %s", ca.Message, cb.Message)
		for _, o := range []objects{a, b} {
			si, _, err := o.importOf("shared")
			if err != nil {
				t.Fatal(err)
			}
			if got := si.Spec.Ports[0].Port; got != 8080 {
				t.Errorf("imported port %d, want the oldest export's 8080", got)
			}
			c := meta.FindStatusCondition(si.Status.Conditions, "Conflict")
			if c == nil || c.Status != metav1.ConditionTrue || c.Reason != catalog.ReasonPortConflict {
				t.Errorf("ServiceImport Conflict condition = %+v, want True PortConflict", c)
			}
		}
	})

	t.Run("malformed exports are reported in their status", func(t *testing.T) {
		a := objects{t: t, c: a.c}
		a.export("orphan")
		_, err := a.c.Kube.CoreV1().Services(ns).Create(a.ctx(), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "external", Namespace: ns},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a.export("external")
		a.export("not.a.service") // a valid object name, not a service name

		tests := []struct {
			name, export, reason string
		}{
			{name: "no Service", export: "orphan", reason: kube.ReasonNoService},
			{name: "ExternalName", export: "external", reason: kube.ReasonInvalidServiceType},
			{name: "bad name", export: "not.a.service", reason: kube.ReasonInvalidServiceExport},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				o := objects{t: t, c: a.c}
				c := o.wantCondition(tc.export, "Valid", metav1.ConditionFalse, tc.reason)
				if c.Message == "" {
					t.Errorf("Valid condition of %s has no message", tc.export)
				}
			})
		}
		// The good export is untouched.
		if _, _, err := (objects{t: t, c: b.c}).importOf("echo"); err != nil {
			t.Errorf("echo no longer imported in west-1: %v", err)
		}
	})

	t.Run("ClusterSetIPs are the same in every cluster and survive a control-plane restart", func(t *testing.T) {
		ips := func(o objects) map[string][]string {
			out := map[string][]string{}
			for _, name := range []string{"echo", "shared"} {
				si, _, err := o.importOf(name)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				out[name] = si.Spec.IPs
			}
			return out
		}
		want := map[string][]string{"echo": {clusterSetIP("echo")}, "shared": {clusterSetIP("shared")}}
		if want["echo"][0] == want["shared"][0] {
			t.Fatalf("echo and shared share %s", want["echo"][0])
		}
		if d := cmp.Diff(want, ips(a)); d != "" {
			t.Errorf("east-1 ServiceImport ips (-want +got):\n%s", d)
		}
		if d := cmp.Diff(want, ips(b)); d != "" {
			t.Errorf("west-1 ServiceImport ips (-want +got):\n%s", d)
		}
		// west-1's control plane goes down; its ServiceImports are
		// deleted meanwhile; the restarted control plane writes them
		// again with the same addresses.
		if err := cpB.mem.Leave(); err != nil {
			t.Fatal(err)
		}
		cpB.shutdown(t)()
		for _, name := range []string{"echo", "shared"} {
			if err := b.c.MCS.MulticlusterV1alpha1().ServiceImports(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		cpB = startControlPlane(top, apiB, west)
		// east-1 frees the name once it has seen the old member leave.
		poll.Until(t, convergence, "west-1 joins east-1 again", func() error {
			_, err := cpB.mem.Join([]string{cpA.mem.Local().Addr})
			return err
		})
		poll.Until(t, convergence, "west-1's ServiceImports written again", func() error {
			for _, name := range []string{"echo", "shared"} {
				si, _, err := b.importOf(name)
				if err != nil {
					return err
				}
				if d := cmp.Diff(want[name], si.Spec.IPs); d != "" {
					return fmt.Errorf("%s ips (-want +got):\n%s", name, d)
				}
			}
			return nil
		})
	})

	t.Run("deleting the export deletes the imports", func(t *testing.T) {
		err := a.c.MCS.MulticlusterV1alpha1().ServiceExports(ns).Delete(context.Background(), "echo", metav1.DeleteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []objects{b, a} {
			poll.Until(t, convergence, "ServiceImport demo/echo and its slices deleted", func() error {
				si, slices, err := o.importOf("echo")
				if apierrors.IsNotFound(err) {
					list, lerr := o.c.Kube.DiscoveryV1().EndpointSlices(ns).List(context.Background(),
						metav1.ListOptions{LabelSelector: mcsv1alpha1.LabelServiceName + "=echo"})
					if lerr != nil {
						return lerr
					}
					if n := len(list.Items); n > 0 {
						return fmt.Errorf("%d EndpointSlices left", n)
					}
					return nil
				}
				if err != nil {
					return err
				}
				return fmt.Errorf("ServiceImport %s still there with %d slices", si.Name, len(slices))
			})
		}
		// The conflicting service is still imported: only echo went away.
		if _, _, err := b.importOf("shared"); err != nil {
			t.Errorf("shared: %v", errors.Unwrap(err))
		}
	})
}

// clusterSetIP is the ClusterSetIP every cluster gives service NAME of
// the test namespace when echo and shared are imported.
func clusterSetIP(name string) string {
	keys := []catalog.ServiceKey{{Namespace: ns, Name: "echo"}, {Namespace: ns, Name: "shared"}}
	return clusterset.Allocate(clusterset.DefaultPrefix, keys)[catalog.ServiceKey{Namespace: ns, Name: name}].String()
}
