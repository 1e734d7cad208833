// Package inject adds fedmesh's sidecar to Kubernetes pods: as a mutating
// admission webhook (Webhook, an http.Handler for AdmissionReview v1) for
// pods created in namespaces labelled fedmesh.io/inject=enabled, and
// offline (Injector.InjectYAML, behind `fedmesh inject -f FILE`) for
// manifests on disk.
//
// # What a pod gets
//
//   - an init container, fedmesh-init, that installs the capture rules in
//     the pod's network namespace (it needs NET_ADMIN and NET_RAW), as an
//     nftables table of its own or iptables and ip6tables rules, whichever
//     the node uses (Capture.Script): inbound TCP goes to the sidecar's
//     inbound port 15006, except to 15006 itself, the ready port 15021
//     and the ports listed in fedmesh.io/exclude-inbound-ports (which may
//     not name 15001 or 15000); outbound TCP goes to 15001, except the
//     sidecar's own traffic (uid/gid 1337), loopback, and the ports and
//     prefixes of fedmesh.io/exclude-outbound-ports and
//     fedmesh.io/exclude-outbound-cidrs; and, unless
//     fedmesh.io/capture-dns=false, DNS (port 53, IPv4 and IPv6) goes to
//     the sidecar's DNS server on 127.0.0.1:15053 and [::1]:15053, which
//     answers clusterset names with ClusterSetIPs and forwards the rest to
//     the pod's nameservers;
//   - the sidecar's inbound mode: PERMISSIVE by default (mTLS from mesh
//     peers, plaintext from anyone else, told apart by the first bytes),
//     STRICT with fedmesh.io/inbound-mode=STRICT (plaintext only on the
//     ports of fedmesh.io/inbound-plaintext-ports), and STRICT on every
//     port in Config.StrictNamespaces, where a pod asking for plaintext is
//     refused;
//   - the opaque ports, where the sidecar detects no protocol (server-first
//     protocols such as SMTP and MySQL): Config.OpaquePorts (Linkerd's by
//     default) or the pod's fedmesh.io/opaque-ports in their place;
//   - the app containers' probes (httpGet over HTTP or HTTPS, tcpSocket,
//     grpc) rewritten to HTTP GETs of the ready port
//     (/app-health/CONTAINER/livez|readyz|startupz), for which the sidecar
//     makes the original check of the app, so probes work in STRICT too;
//   - the sidecar, fedmesh-sidecar, as a native sidecar (an init container
//     with restartPolicy Always, so it starts before the app and stops
//     after it), running as 1337 with a read-only root and no
//     capabilities. Its outbound proxy (15001) and admin pages (15000)
//     listen on 127.0.0.1, for the app alone: whoever reaches the proxy
//     speaks with the pod's identity, and a connection from another pod
//     to those ports is redirected to the inbound listener, which demands
//     mTLS. The inbound listener (15006) and /ready with
//     /stats/prometheus alone (15021, for the kubelet's startup probe and
//     Prometheus) listen on the pod address;
//   - a projected ServiceAccount token (audience "fedmesh", one hour,
//     renewed by the kubelet) at /var/run/secrets/fedmesh/token/token,
//     which the sidecar shows the control plane; the control plane checks
//     it with a TokenReview (package kube's TokenReviewer);
//   - the federation's root bundle from the ConfigMap fedmesh-roots
//     (root.pem) at /etc/fedmesh/roots;
//   - serviceAccountName "default" when it has none (the token needs one;
//     the API server's ServiceAccount admission does the same);
//   - the annotation fedmesh.io/injected=true. Injecting twice changes
//     nothing.
//
// A pod is left alone when it has fedmesh.io/inject=false, is injected
// already, or uses the host network. A pod that already has a container or
// volume by one of fedmesh's names is refused (the webhook denies it with
// the reason).
//
// # Example
//
//	in, err := inject.New(inject.Config{
//		SidecarImage: "fedmesh:1.0", InitImage: "fedmesh-init:1.0", TrustDomain: "fedmesh.example",
//	})
//	wh, err := inject.NewWebhook(in, logger, registry)
//	mux.Handle("/inject", wh)                     // behind TLS
//	n, err := in.InjectYAML(os.Stdin, os.Stdout)   // offline
package inject
