// Package dns is the sidecar's small local DNS server for
// *.svc.clusterset.local: it answers A (and AAAA) queries for the services
// the sidecar knows, NAME.NS.svc.clusterset.local and NAME.NS, with the
// address the sidecar listens on for them, over UDP and TCP. It is not a
// recursive resolver: names it does not own are REFUSED, or, with
// Config.Forward (a Forwarder to the pod's nameservers, for a pod whose
// DNS is captured to the sidecar), passed on as they are; unknown names
// under clusterset.local get NXDOMAIN. Malformed queries get FORMERR (or
// are dropped when not even the header parses) and are counted. A failed
// UDP read or TCP accept that is not the socket being closed is counted in
// fedmesh_sidecar_dns_read_errors_total and the server goes on answering.
//
// An application (or a resolver such as systemd-resolved or dnsmasq,
// forwarding the clusterset.local domain) points at it:
//
//	srv, _ := dns.New(dns.Config{Resolve: func(name string) (netip.Addr, bool) {...}}, reg)
//	go srv.Serve(ctx, udpConn, tcpListener)
package dns
