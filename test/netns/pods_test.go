package netns

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/fedmesh/fedmesh/controlplane/inject"
	"github.com/fedmesh/fedmesh/internal/demo"
)

// Addresses of the pods lab, from 198.18.0.0/15: one /24 on a bridge in
// the lab's hub namespace. No address of it is in this (the host's)
// namespace, so two labs on one machine never meet and need no lock.
const (
	podsNet = "198.19.15."
	eastIP  = podsNet + "11" // east-1's control plane and gateway
	westIP  = podsNet + "12" // west-1's
	// The pods: demo/client in east-1, demo/echo-1 in west-1.
	clientPodIP = podsNet + "21"
	echoPodIP   = podsNet + "22"
	// otherIP is another pod, outside the mesh: the plaintext caller, the
	// attacker, and two servers no service names (on the mesh's HTTP
	// port 8080 and on 9000).
	otherIP = podsNet + "30"
	// clusterSetCIDR is where both control planes allocate ClusterSetIPs:
	// no host has them; only capture makes them reachable.
	clusterSetCIDR = "198.19.192.0/18"
	// nameserverIP is the pods' nameserver (their resolv.conf): no host
	// has it either; the capture rules send the pods' DNS to their
	// sidecars.
	nameserverIP = podsNet + "53"
)

// podsLab is two clusters, each a namespace with its control plane
// (embedded etcd) and gateway, federated by a join token; and pods as
// namespaces of their own, each with the injector's own init script run in
// it and the real sidecar as uid 1337, with the arguments injection gives.
type podsLab struct {
	*lab
	bin                                 string
	east, west, client, echo, other, hb string
}

func newPodsLab(t *testing.T) *podsLab {
	t.Helper()
	requireTools(t, "ip", "setpriv", "iptables", "ip6tables", "nft")
	p := &podsLab{lab: newEmptyLab(t), bin: fedmeshBin(t)}
	l := p.lab
	p.hb = l.addNamespace("hub")
	l.sh("ip", "-n", p.hb, "link", "add", "br0", "type", "bridge")
	l.sh("ip", "-n", p.hb, "link", "set", "br0", "up")
	for i, n := range []struct {
		ns *string
		ip string
	}{{&p.east, eastIP}, {&p.west, westIP}, {&p.client, clientPodIP}, {&p.echo, echoPodIP}, {&p.other, otherIP}} {
		*n.ns = l.addNamespace(fmt.Sprintf("n%d", i))
		port := fmt.Sprintf("p%d", i)
		l.sh("ip", "-n", p.hb, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", *n.ns)
		l.sh("ip", "-n", p.hb, "link", "set", port, "master", "br0", "up")
		l.sh("ip", "-n", *n.ns, "addr", "add", n.ip+"/24", "dev", "eth0")
		l.sh("ip", "-n", *n.ns, "link", "set", "eth0", "up")
		// A default route, as pods have: an app may dial addresses no
		// host has (ClusterSetIPs), which only the capture rules serve.
		l.sh("ip", "-n", *n.ns, "route", "add", "default", "dev", "eth0")
	}
	// The pods' resolv.conf, which `ip netns exec` mounts on
	// /etc/resolv.conf for every process of the namespace.
	for _, ns := range []string{p.client, p.echo} {
		dir := filepath.Join("/etc/netns", ns)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+nameserverIP+"\noptions attempts:1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// fm runs a short fedmesh command in namespace ns ("" for this one).
func (p *podsLab) fm(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{p.bin}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("fedmesh %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (p *podsLab) mustFM(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.fm(t, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// workload writes a workload's bootstrap token and the federation bundle
// to DIR/cluster/workloads/name, readable by uid 1337.
func (p *podsLab) workload(t *testing.T, cluster, ns, sa, name string) string {
	t.Helper()
	dir := p.path(cluster, "workloads", name)
	p.mustFM(t, "ca", "bootstrap-token", "--ca-dir", p.path(cluster, "ca"), "--namespace", ns, "--service-account", sa, "--workload", name, "--out", dir)
	bundle, err := os.ReadFile(p.path(cluster, "ca", "bundle.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bundle.crt"), bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{p.path(cluster), p.path(cluster, "workloads"), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{dir, state, filepath.Join(dir, "token"), filepath.Join(dir, "bundle.crt")} {
		if err := os.Chown(f, proxyUID, proxyUID); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cluster starts one cluster's control plane and gateway in ns, at ip;
// its workloads send from cidrs.
func (p *podsLab) cluster(t *testing.T, ns, name, region, ip, cidrs string, src demo.Source) []*proc {
	t.Helper()
	p.mustFM(t, "ca", "issue-cluster", "--root-dir", p.path("root"), "--cluster", name, "--dir", p.path(name, "ca"))
	if err := demo.WriteSourceDir(p.path(name, "source"), src); err != nil {
		t.Fatal(err)
	}
	// No authorization policy: one would guard echo's port, which then
	// takes mTLS alone (plaintext has no identity to check), and this
	// test wants PERMISSIVE's plaintext too.
	if err := os.Remove(p.path(name, "source", demo.PolicyFile)); err != nil {
		t.Fatal(err)
	}
	// Endpoints on the app's port, as Kubernetes' EndpointSlices have
	// them (the demo's local mode gives the inbound port): mesh peers
	// dial the app's port and the capture rules bring them to the
	// inbound listener.
	yamlPath := p.path(name, "source", "demo.yaml")
	b, err := os.ReadFile(yamlPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(yamlPath, []byte(strings.ReplaceAll(string(b), "ports: {http: 15006}", "ports: {http: 8080}")), 0o644); err != nil {
		t.Fatal(err)
	}
	cp := p.start(t, ns, name+"-controlplane", 0, p.bin, "controlplane", "--cluster", name, "--region", region, "--zone", "a",
		"--bind-address", ip, "--data-dir", p.path(name, "data"), "--source", "file:"+p.path(name, "source"),
		"--ca-dir", p.path(name, "ca"), "--gossip-profile", "local", "--clusterset-cidr", clusterSetCIDR, "--cluster-cidrs", cidrs)
	dir := p.workload(t, name, "fedmesh-system", "gateway", "gateway")
	gw := p.start(t, ns, name+"-gateway", 0, p.bin, "gateway", "--cluster", name, "--region", region, "--zone", "a",
		"--listen", ip+":15443", "--admin", ip+":15021", "--xds-address", ip+":15010",
		"--trust-domain", trustDomain, "--root-bundle", filepath.Join(dir, "bundle.crt"), "--token-file", filepath.Join(dir, "token"),
		"--service-account", "gateway", "--data-dir", p.path(name, "gateway-state"))
	return []*proc{cp, gw}
}

// pod is one injected pod: its namespace, the init script and the sidecar
// arguments injection made for it.
type pod struct {
	ns, name, ip string
	script       string
	args         []string
}

// injectPod injects pod NAME (service account sa, namespace demo) of
// cluster, with annotations and, when probe is set, an HTTP readiness
// probe of its app on 8080, and fills in the pod's fields as the kubelet
// would.
func injectPod(t *testing.T, cluster, xds, name, sa, ip string, annotations map[string]string, probe bool) pod {
	t.Helper()
	in, err := inject.New(inject.Config{SidecarImage: "fedmesh:dev", InitImage: "fedmesh-init:dev",
		TrustDomain: trustDomain, Cluster: cluster, XDSAddress: xds})
	if err != nil {
		t.Fatal(err)
	}
	meta := metav1.ObjectMeta{Name: name, Namespace: "demo", Annotations: annotations}
	app := corev1.Container{Name: "app", Image: "app:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	if probe {
		app.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}}
	}
	spec := corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{app}}
	if ok, err := in.Inject(&meta, &spec); !ok || err != nil {
		t.Fatalf("inject %s: %t, %v", name, ok, err)
	}
	out := pod{name: name, ip: ip}
	fields := map[string]string{"POD_NAME": name, "POD_NAMESPACE": "demo", "POD_IP": ip, "SERVICE_ACCOUNT": sa}
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	for _, c := range spec.InitContainers {
		switch c.Name {
		case inject.InitName:
			out.script = c.Command[2]
		case inject.SidecarName:
			for _, a := range c.Args {
				out.args = append(out.args, ref.ReplaceAllStringFunc(a, func(m string) string { return fields[m[2:len(m)-1]] }))
			}
		}
	}
	if probe && spec.Containers[0].ReadinessProbe.HTTPGet.Port.IntValue() != inject.DefaultReadyPort {
		t.Fatalf("the app's probe was not rewritten to the ready port: %+v", spec.Containers[0].ReadinessProbe.HTTPGet)
	}
	return out
}

// capture runs the pod's init script in its namespace with backend
// (nft or iptables), as the init container does.
func (p *podsLab) capture(t *testing.T, pd pod, backend string) {
	t.Helper()
	out := p.sh("ip", "netns", "exec", pd.ns, "env", inject.CaptureEnv+"="+backend, "sh", "-c", pd.script)
	if !strings.Contains(out, "capture with "+backend) {
		t.Fatalf("the init script in %s: %q, want capture with %s", pd.name, out, backend)
	}
	// The rules of both families are in place.
	lists := [][]string{{"nft", "list", "table", "inet", "fedmesh"}}
	if backend == "iptables" {
		lists = [][]string{{"iptables", "-t", "nat", "-S", "FEDMESH_REDIRECT"}, {"ip6tables", "-t", "nat", "-S", "FEDMESH_REDIRECT"}}
	}
	for _, list := range lists {
		if out := p.sh(append([]string{"ip", "netns", "exec", pd.ns}, list...)...); !regexp.MustCompile(`(redirect to :|--to-ports )15001`).MatchString(out) {
			t.Errorf("%s in %s: %q, want the outbound redirect", strings.Join(list, " "), pd.name, out)
		}
	}
}

// sidecar starts the pod's sidecar as uid 1337 with its injected
// arguments and its workload files.
func (p *podsLab) sidecar(t *testing.T, pd pod, cluster, sa string) *proc {
	t.Helper()
	dir := p.workload(t, cluster, "demo", sa, pd.name)
	args := append(append([]string{p.bin}, pd.args...), "--token-file="+dir+"/token", "--root-bundle="+dir+"/bundle.crt", "--data-dir="+dir+"/state")
	return p.start(t, pd.ns, pd.name+"-sidecar", proxyUID, args...)
}

// TestPodPath runs two clusters and two injected pods (demo/client in
// east-1, captured with nftables; demo/echo-1 in west-1, the only echo
// replica, captured with iptables and ip6tables), and another pod outside
// the mesh. The client's app knows nothing of the mesh: it dials
// addresses, and the capture rules and its sidecar decide. Proven, each
// from the side that sees it:
//   - a call by name (resolved by the pod's DNS, captured to its sidecar),
//     a call naming echo (Host) to an address outside the mesh, and a call
//     to echo's ClusterSetIP are captured and served by echo-1 in west-1
//     over mTLS, through west-1's gateway, to echo-1's app port (as
//     Kubernetes' endpoints give it), where echo-1's capture rules bring
//     the connection to its sidecar, with the client's identity;
//   - calls to addresses outside the mesh pass through untouched, to the
//     mesh's HTTP port (the Host names no service) and to another port;
//   - a plaintext call to echo-1's app port reaches the app in PERMISSIVE
//     (the default) and is refused in STRICT, where the kubelet's
//     probe, rewritten to the sidecar's ready port, still reaches it;
//   - the other pod cannot use the client sidecar's outbound proxy or
//     admin pages;
//   - with an IPv6 nameserver in both pods' resolv.conf, their IPv6 DNS
//     is captured to their sidecars, which answer clusterset names and
//     forward the rest to that nameserver (dns6_test.go).
func TestPodPath(t *testing.T) {
	p := newPodsLab(t)
	p.mustFM(t, "ca", "init", "--trust-domain", trustDomain, "--dir", p.path("root"))
	p.mustFM(t, "ca", "issue-operator", "--root-dir", p.path("root"), "--name", "netns", "--out", p.path("operator"))
	// echo is exported by both clusters; only west-1 runs a replica.
	deps := append(p.cluster(t, p.east, "east-1", "us-east", eastIP, eastIP+"/32,"+clientPodIP+"/32", demo.Source{Cluster: "east-1", Index: 1, Zone: "a", ClientIP: clientPodIP}),
		p.cluster(t, p.west, "west-1", "us-west", westIP, westIP+"/32,"+echoPodIP+"/32", demo.Source{Cluster: "west-1", Index: 2, Zone: "a", ClientIP: podsNet + "23",
			Replicas: []demo.Replica{{N: 1, IP: echoPodIP}}})...)
	alive := func() {
		t.Helper()
		for _, d := range deps {
			if d.exited() {
				t.Fatalf("%s exited: %v", d.name, d.err)
			}
		}
	}

	// Federate: a token from east-1, west-1 joins with it.
	var tok string
	eventually(t, 60*time.Second, "a join token from east-1", func() error {
		alive()
		out, err := p.fm(t, p.east, "token", "create", "--ttl", "10m", "--admin", "https://"+eastIP+":15014", "--operator-dir", p.path("operator"))
		tok = strings.TrimSpace(out)
		return err
	})
	if err := os.WriteFile(p.path("join.token"), []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "west-1 joins", func() error {
		alive()
		_, err := p.fm(t, p.west, "join", "--token-file", p.path("join.token"), "--admin", "https://"+westIP+":15014", "--operator-dir", p.path("operator"))
		return err
	})

	// Outside the mesh: two servers in the other pod.
	p.start(t, p.other, "outside-8080", 0, p.bin, "echo", "--listen", otherIP+":8080", "--cluster", "none", "--workload", "outside-8080")
	p.start(t, p.other, "outside-9000", 0, p.bin, "echo", "--listen", otherIP+":9000", "--cluster", "none", "--workload", "outside-9000")

	// echo-1 in west-1: its app, the capture rules, its sidecar.
	echoPod := injectPod(t, "west-1", westIP+":15010", "echo-1", "echo", echoPodIP, nil, true)
	echoPod.ns = p.echo
	p.capture(t, echoPod, "iptables")
	p.start(t, p.echo, "echo-1-app", 0, p.bin, "echo", "--listen", echoPodIP+":8080", "--cluster", "west-1", "--workload", "echo-1")
	echoSidecar := p.sidecar(t, echoPod, "west-1", "echo")

	// The client in east-1.
	clientPod := injectPod(t, "east-1", eastIP+":15010", "client", "client", clientPodIP, nil, false)
	clientPod.ns = p.client
	p.capture(t, clientPod, "nft")
	clientSidecar := p.sidecar(t, clientPod, "east-1", "client")
	deps = append(deps, clientSidecar)

	app := func(pr probe) outcome { return mustProbe(t, p.client, pr) }
	byName := probe{URL: "http://echo.demo.svc.clusterset.local:8080/", Via: otherIP + ":8080"}
	served := func(o outcome) error {
		if rep, ok := echoReply(o); !ok || rep.Cluster != "west-1" || rep.Workload != "echo-1" || rep.ClientID != clientID {
			return fmt.Errorf("%v, want echo-1 of west-1 to answer %s", o, clientID)
		}
		return nil
	}
	eventually(t, 90*time.Second, "the client's call naming echo is served in west-1", func() error {
		alive()
		if echoSidecar.exited() {
			t.Fatalf("echo-1's sidecar exited: %v", echoSidecar.err)
		}
		o, err := probeIn(p.client, byName)
		if err != nil {
			return err
		}
		return served(o)
	})

	t.Run("mesh call by name and by ClusterSetIP", func(t *testing.T) {
		// The name resolved as any app resolves it: the pod's DNS,
		// captured to the sidecar, answers the ClusterSetIP, which the
		// outbound capture serves.
		if err := served(app(probe{URL: "http://echo.demo.svc.clusterset.local:8080/"})); err != nil {
			t.Errorf("by name, resolved by the pod's DNS: %v", err)
		}
		if n := metric(t, p.client, "fedmesh_sidecar_dns_queries_total", `result="answer"`); n < 1 {
			t.Errorf("the client sidecar's DNS answered %v queries", n)
		}
		// The name in Host, on a connection to another address (one
		// outside the mesh, which must not see it).
		if err := served(app(byName)); err != nil {
			t.Errorf("by name in Host, to %s (a server outside the mesh): %v", otherIP, err)
		}
		// The ClusterSetIP, as the sidecar has it from xDS.
		o := app(probe{URL: "http://127.0.0.1:15000/config_dump", Match: `"clusterSetIP"`})
		m := regexp.MustCompile(`"clusterSetIP": "([0-9.]+)"`).FindStringSubmatch(o.Body)
		if m == nil {
			t.Fatalf("no ClusterSetIP in the client sidecar's configuration: %v", o)
		}
		csip := m[1]
		if _, cidr, _ := net.ParseCIDR(clusterSetCIDR); !cidr.Contains(net.ParseIP(csip)) {
			t.Errorf("ClusterSetIP %s is outside %s", csip, clusterSetCIDR)
		}
		if err := served(app(probe{URL: "http://" + net.JoinHostPort(csip, "8080") + "/"})); err != nil {
			t.Errorf("by ClusterSetIP %s: %v", csip, err)
		}
		// Across clusters: west-1's gateway carried them, to echo-1's
		// app port, where the capture rules took them to its sidecar.
		if o := mustProbe(t, p.west, probe{URL: "http://" + westIP + ":15021/debug/routes", Match: echoPodIP}); !strings.Contains(o.Body, echoPodIP+":8080") {
			t.Errorf("west-1's gateway routes echo to %q, want echo-1's app port %s:8080", o.Body, echoPodIP)
		}
		o = mustProbe(t, p.west, probe{URL: "http://" + westIP + ":15021/stats/prometheus", Match: "fedmesh_gateway_connections_total"})
		if !regexp.MustCompile(`fedmesh_gateway_connections_total\{[^}]*destination_service="echo.demo.svc.clusterset.local"[^}]*source_cluster="east-1"`).MatchString(o.Body) &&
			!regexp.MustCompile(`fedmesh_gateway_connections_total\{[^}]*source_cluster="east-1"[^}]*destination_service="echo.demo.svc.clusterset.local"`).MatchString(o.Body) {
			t.Errorf("west-1's gateway counted no connection from east-1 to echo: %q", o.Body)
		}
		if n := metric(t, p.client, "fedmesh_sidecar_captured_connections_total", `by="host"`); n < 1 {
			t.Errorf("the client sidecar counted %v connections captured by host", n)
		}
		if n := metric(t, p.client, "fedmesh_sidecar_captured_connections_total", `by="address"`); n < 1 {
			t.Errorf("the client sidecar counted %v connections captured by address", n)
		}
	})

	t.Run("non-mesh addresses pass through", func(t *testing.T) {
		before := metric(t, p.client, "fedmesh_sidecar_passthrough_connections_total", `direction="outbound"`)
		for _, c := range []struct{ url, workload string }{
			{"http://" + otherIP + ":8080/", "outside-8080"},
			{"http://" + otherIP + ":9000/", "outside-9000"},
		} {
			o := app(probe{URL: c.url})
			if rep, ok := echoReply(o); !ok || rep.Workload != c.workload || rep.ClientID != "" {
				t.Errorf("GET %s: %v, want %s's own answer, with no mesh identity", c.url, o, c.workload)
			}
		}
		if after := metric(t, p.client, "fedmesh_sidecar_passthrough_connections_total", `direction="outbound"`); after-before != 2 {
			t.Errorf("passthrough connections went from %v to %v, want 2 more", before, after)
		}
	})

	plain := probe{URL: "http://" + echoPodIP + ":8080/"}
	probeViaSidecar := probe{URL: "http://" + echoPodIP + ":15021" + inject.AppHealthPrefix + "app/readyz"}
	t.Run("PERMISSIVE takes plaintext", func(t *testing.T) {
		o := mustProbe(t, p.other, plain)
		if rep, ok := echoReply(o); !ok || rep.Workload != "echo-1" || rep.ClientID != "" {
			t.Errorf("a plaintext call to echo-1's app port: %v, want the app's answer without a mesh identity", o)
		}
		if o := mustProbe(t, p.other, probeViaSidecar); o.Status != http.StatusOK {
			t.Errorf("the kubelet's probe through the ready port: %v, want 200", o)
		}
	})

	t.Run("STRICT refuses plaintext", func(t *testing.T) {
		strict := injectPod(t, "west-1", westIP+":15010", "echo-1", "echo", echoPodIP, map[string]string{inject.AnnotationInboundMode: inject.ModeStrict}, true)
		strict.ns = p.echo
		echoSidecar.stop()
		echoSidecar = p.sidecar(t, strict, "west-1", "echo")
		eventually(t, 60*time.Second, "the STRICT echo-1 serves the client", func() error {
			if echoSidecar.exited() {
				t.Fatalf("echo-1's sidecar exited: %v", echoSidecar.err)
			}
			o, err := probeIn(p.client, byName)
			if err != nil {
				return err
			}
			return served(o)
		})
		if o := mustProbe(t, p.other, plain); o.Err == "" {
			t.Errorf("a plaintext call to a STRICT app port: %v, want it refused", o)
		}
		if o := mustProbe(t, p.other, probeViaSidecar); o.Status != http.StatusOK {
			t.Errorf("the kubelet's probe through the ready port of a STRICT pod: %v, want 200", o)
		}
		if n := metric(t, p.echo, "fedmesh_sidecar_inbound_plaintext_refused_total", `reason="strict"`); n < 1 {
			t.Errorf("echo-1's sidecar counted %v plaintext refusals for STRICT", n)
		}
	})

	t.Run("another pod cannot use the sidecar", func(t *testing.T) {
		client := func(port string) string { return net.JoinHostPort(clientPodIP, port) }
		for _, pr := range []probe{
			{URL: "http://echo.demo.svc.clusterset.local:8080/", Proxy: client("15001")},
			{URL: "http://echo.demo.svc.clusterset.local:8080/", Via: client("15001")},
			{URL: "http://" + client("15000") + "/config_dump"},
			{URL: "http://" + client("15000") + "/stats/prometheus"},
		} {
			o := mustProbe(t, p.other, pr)
			if _, ok := echoReply(o); ok || strings.Contains(o.Body, clientID) || (o.Err == "" && o.Status < 400) {
				t.Errorf("another pod's %+v: %v, want no answer", pr, o)
			}
		}
		if n := metric(t, p.client, "fedmesh_sidecar_inbound_plaintext_refused_total", `reason="own_port"`); n < 4 {
			t.Errorf("the client sidecar counted %v plaintext refusals for its own ports, want 4", n)
		}
	})

	// Last, as it restarts both pods' sidecars (dns6_test.go).
	t.Run("IPv6 DNS", func(t *testing.T) {
		p.ipv6DNS(t, []*dns6Pod{
			{pod: clientPod, cluster: "east-1", sa: "client", ip6: podsNet6 + "21", sidecar: clientSidecar},
			{pod: echoPod, cluster: "west-1", sa: "echo", ip6: podsNet6 + "22", sidecar: echoSidecar},
		}, func() error {
			o, err := probeIn(p.client, probe{URL: "http://echo.demo.svc.clusterset.local:8080/"})
			if err != nil {
				return err
			}
			return served(o)
		})
	})
}

// metric reads the sum of a counter's series whose labels contain match
// from the sidecar's admin page, in namespace ns.
func metric(t *testing.T, ns, name, match string) float64 {
	t.Helper()
	o := mustProbe(t, ns, probe{URL: "http://127.0.0.1:15000/stats/prometheus", Match: name})
	sum := 0.0
	for _, line := range strings.Split(o.Body, "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s: %q", name, line)
		}
		sum += v
	}
	return sum
}
