// Package webview is the live picture of the clusterset that a control
// plane serves on its admin port: clusters and their east-west gateways
// as a graph, the request rate, error rate and p99 of the traffic
// between clusters, fenced clusters and failover as they happen, and,
// for a service, why each endpoint is at its priority.
//
// The data flows one way:
//
//	sidecars' and gateway's /stats/prometheus --Collector (one tick a
//	second, bounded targets, reads and page size)--> window of rates
//	federation Status + View + connected xDS nodes + rates --Build (pure)--> Graph
//	Graph --GraphHandler--> GET /debug/graph (JSON) <--polled each second-- the page (UIHandler, GET /ui/)
//	the page --> GET /debug/endpoints (the xDS plan's explanation per endpoint)
//
// The rates come from the client side of each request: a sidecar counts
// its outbound requests in fedmesh_sidecar_requests_total and
// fedmesh_sidecar_request_duration_seconds with source_cluster and
// destination_cluster, so a control plane that reads its own cluster's
// sidecars knows every edge leaving its cluster, including the local
// loop. Counter resets (a restarted sidecar) count from zero; a target
// that stops answering drops out of the window. The control plane gives
// the targets (controlplane.WebViewConfig): in local mode the loopback
// addresses the nodes' ids name, in Kubernetes mode the IPs of the pods
// the nodes' projected tokens are bound to, on the sidecars' ready port. The collector is owned
// by the control plane's mesh group (Run), and Snapshot is safe from
// any goroutine.
//
// The page is hand-written HTML, JavaScript and CSS embedded in the
// binary (assets/): no framework, no build step, no request leaves the
// admin port, so it works offline. It uses relative URLs, so it works
// both on the admin port (a browser with an operator certificate) and
// behind Proxy, which `fedmesh dashboard` runs on a loopback address
// holding the operator certificate:
//
//	p, err := webview.NewProxy(webview.ProxyConfig{Admin: adminURL, TLS: operatorTLS})
//	ln, _ := net.Listen("tcp", "127.0.0.1:0")
//	fmt.Println(p.PageURL(ln.Addr().String())) // http://127.0.0.1:PORT/TOKEN/ui/
//	http.Serve(ln, p)
//
// The proxy forwards only GET and HEAD of the page's own paths, for
// requests that carry the secret token in their path, name a loopback
// Host and, when they send an Origin, its own.
package webview
