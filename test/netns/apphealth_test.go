package netns

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/fedmesh/fedmesh/controlplane/inject"
)

// inNamespace runs f on a thread locked to it that enters network
// namespace ns: the sockets f makes belong to ns, and stay there when
// used from any thread afterwards. The thread goes back to its own
// namespace before it is unlocked: a thread that ended instead would
// take with it (Pdeathsig) the lab's processes that it happened to
// start.
func inNamespace(ns string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer unix.Close(own)
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		ferr := f()
		if err := unix.Setns(own, unix.CLONE_NEWNET); err != nil {
			// Still in ns: the thread stays locked and ends with this
			// goroutine.
			done <- fmt.Errorf("back to the test's namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// listenIn listens on addr in namespace ns; the listener is closed when
// the test ends.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := inNamespace(ns, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestAppHealthAndOpaquePorts runs a STRICT pod, injected with an HTTPS
// readiness probe of a named port, a TCP liveness probe and a gRPC
// startup probe, with its app's servers (a TLS server with a self-signed
// certificate, a TCP listener, a gRPC health server) on the pod address,
// the injector's own capture rules and the real sidecar as uid 1337; and,
// in the peer namespace, the control plane (whose echo service makes
// 8080 a mesh HTTP port) and a server outside the mesh that speaks first
// on 8080, which the pod's fedmesh.io/opaque-ports makes opaque. Proven:
//   - the kubelet's probes, rewritten to the ready port, reach the app's
//     HTTPS, TCP and gRPC servers through the sidecar (and a TCP probe of
//     a closed port fails), while plaintext from the peer to the app's
//     port is refused;
//   - the app's connection to the server-first server, captured and
//     passed through, gets the banner without sending anything, and the
//     sidecar counts the detection it skipped and no wait.
func TestAppHealthAndOpaquePorts(t *testing.T) {
	requireTools(t, "ip", "setpriv", "iptables", "ip6tables")
	bin := fedmeshBin(t)
	l := newLab(t)
	fm := fedmeshRunner(t, bin)
	cp := startLabCluster(t, l, bin, fm)

	// The app's servers, on the pod address.
	httpsApp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	httpsApp.Listener.Close()
	httpsApp.Listener = listenIn(t, l.pod, net.JoinHostPort(podIP, "8443"))
	httpsApp.StartTLS()
	defer httpsApp.Close()
	db := listenIn(t, l.pod, net.JoinHostPort(podIP, "5432"))
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := db.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer db.Close()
	hs := health.NewServer()
	hs.SetServingStatus("shop.v1.Cart", healthpb.HealthCheckResponse_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	grpcL := listenIn(t, l.pod, net.JoinHostPort(podIP, "9090"))
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = gs.Serve(grpcL)
	}()
	defer gs.Stop()

	// Outside the mesh, in the peer: a server that speaks first, on the
	// mesh's HTTP port.
	const banner = "220 mail.example ESMTP ready\r\n"
	smtp := listenIn(t, l.peer, net.JoinHostPort(serverIP, "8080"))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := smtp.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, banner)
			c.Close()
		}
	}()
	defer smtp.Close()

	// The pod, as injection makes it.
	xds := net.JoinHostPort(cpIP, "15010")
	script, args := injectedApp(t, xds)
	l.sh("ip", "netns", "exec", l.pod, "sh", "-c", script)
	dir := workloadDir(t, l, fm, "client", "client")
	state := dir + "/state"
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{dir + "/token", dir + "/bundle.crt", state} {
		if err := os.Chown(f, proxyUID, proxyUID); err != nil {
			t.Fatal(err)
		}
	}
	sc := l.start(t, l.pod, "client-sidecar", proxyUID, append(append([]string{bin}, args...),
		"--token-file="+dir+"/token", "--root-bundle="+dir+"/bundle.crt", "--data-dir="+state)...)
	readyURL := "http://" + net.JoinHostPort(podIP, "15021")
	eventually(t, 60*time.Second, "the pod's sidecar is ready", func() error {
		for _, p := range []*proc{sc, cp} {
			if p.exited() {
				t.Fatalf("%s exited: %v", p.name, p.err)
			}
		}
		o, err := probeIn(l.peer, probe{URL: readyURL + "/ready"})
		if err != nil {
			return err
		}
		if o.Status != http.StatusOK {
			return fmt.Errorf("%v", o)
		}
		return nil
	})

	t.Run("probes of every kind in STRICT", func(t *testing.T) {
		for _, kind := range []string{"readyz", "livez", "startupz"} {
			if o := mustProbe(t, l.peer, probe{URL: readyURL + inject.AppHealthPrefix + "app/" + kind}); o.Status != http.StatusOK {
				t.Errorf("the kubelet's %s probe through the ready port: %v, want 200", kind, o)
			}
		}
		// Plaintext from outside to the app's port: refused (the HTTPS
		// server itself would answer it 400).
		if o := mustProbe(t, l.peer, probe{URL: "http://" + net.JoinHostPort(podIP, "8443") + "/healthz"}); o.Err == "" {
			t.Errorf("plaintext to the STRICT app port: %v, want it refused", o)
		}
		if n := metric(t, l.pod, "fedmesh_sidecar_inbound_plaintext_refused_total", `reason="strict"`); n < 1 {
			t.Errorf("the sidecar counted %v plaintext refusals for STRICT", n)
		}
		// The TCP probe is a real check: with the app's port closed it
		// fails.
		db.Close()
		eventually(t, 10*time.Second, "the TCP probe of a closed port fails", func() error {
			o, err := probeIn(l.peer, probe{URL: readyURL + inject.AppHealthPrefix + "app/livez"})
			if err != nil {
				return err
			}
			if o.Status != http.StatusServiceUnavailable {
				return fmt.Errorf("%v, want 503", o)
			}
			return nil
		})
	})

	t.Run("a server-first server on an opaque port", func(t *testing.T) {
		// The sidecar knows echo's HTTP port 8080 before the check: else
		// no detection would be due, and none skipped.
		eventually(t, 30*time.Second, "the sidecar has echo's port", func() error {
			o, err := probeIn(l.pod, probe{URL: "http://127.0.0.1:15000/config_dump", Match: "8080"})
			if err != nil {
				return err
			}
			if !regexp.MustCompile(`echo`).MatchString(o.Body) {
				return fmt.Errorf("no echo:8080 in the configuration: %q", o.Body)
			}
			return nil
		})
		// The app dials the server's address, as any app does; the rules
		// redirect the connection to the sidecar, and the app sends
		// nothing.
		var got string
		err := inNamespace(l.pod, func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(serverIP, "8080"), probeTimeout)
			if err != nil {
				return err
			}
			defer c.Close()
			// A deadline for a wait that must end, not a measure.
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			got, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err != nil || got != banner {
			t.Fatalf("the app read %q, %v; want the banner %q", got, err, banner)
		}
		if n := metric(t, l.pod, "fedmesh_sidecar_protocol_detection_total", `result="skipped"`); n < 1 {
			t.Errorf("the sidecar counted %v skipped detections, want 1", n)
		}
		if n := metric(t, l.pod, "fedmesh_sidecar_protocol_detection_total", `result="timeout"`); n != 0 {
			t.Errorf("the sidecar counted %v detection waits that timed out, want none", n)
		}
		if n := metric(t, l.pod, "fedmesh_sidecar_passthrough_connections_total", `direction="outbound"`); n < 1 {
			t.Errorf("the sidecar counted %v outbound passthrough connections", n)
		}
	})
}

// injectedApp injects pod demo/client, STRICT, whose app has an HTTPS
// readiness probe of its named port https (8443), a TCP liveness probe
// of 5432 and a gRPC startup probe of 9090, and port 8080 opaque by its
// annotation; it returns the init script and the sidecar's arguments,
// the pod's fields filled in as the kubelet would.
func injectedApp(t *testing.T, xds string) (script string, args []string) {
	t.Helper()
	in, err := inject.New(inject.Config{SidecarImage: "fedmesh:dev", InitImage: "fedmesh-init:dev",
		TrustDomain: trustDomain, Cluster: cluster, XDSAddress: xds})
	if err != nil {
		t.Fatal(err)
	}
	meta := metav1.ObjectMeta{Name: "client", Namespace: "demo", Annotations: map[string]string{
		inject.AnnotationInboundMode: inject.ModeStrict,
		inject.AnnotationOpaquePorts: "25,8080",
	}}
	svc := "shop.v1.Cart"
	app := corev1.Container{Name: "app", Image: "app:1",
		Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 8443}, {Name: "db", ContainerPort: 5432}, {Name: "grpc", ContainerPort: 9090}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/healthz", Port: intstr.FromString("https"), Scheme: corev1.URISchemeHTTPS}}},
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("db")}}},
		StartupProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090, Service: &svc}}},
	}
	spec := corev1.PodSpec{ServiceAccountName: "client", Containers: []corev1.Container{app}}
	if ok, err := in.Inject(&meta, &spec); !ok || err != nil {
		t.Fatalf("inject: %t, %v", ok, err)
	}
	for _, p := range []*corev1.Probe{spec.Containers[0].ReadinessProbe, spec.Containers[0].LivenessProbe, spec.Containers[0].StartupProbe} {
		if p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != inject.DefaultReadyPort {
			t.Fatalf("a probe was not rewritten to the ready port: %+v", p.ProbeHandler)
		}
	}
	fields := map[string]string{"POD_NAME": meta.Name, "POD_NAMESPACE": meta.Namespace, "POD_IP": podIP, "SERVICE_ACCOUNT": spec.ServiceAccountName}
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	for _, c := range spec.InitContainers {
		switch c.Name {
		case inject.InitName:
			script = c.Command[2]
		case inject.SidecarName:
			for _, a := range c.Args {
				args = append(args, ref.ReplaceAllStringFunc(a, func(m string) string { return fields[m[2:len(m)-1]] }))
			}
		}
	}
	if script == "" || args == nil {
		t.Fatalf("injected init containers: %+v", spec.InitContainers)
	}
	return script, args
}
