// Package xdsresource builds the Envoy resources fedmesh sends, one
// function per kind, following docs/xds.md: EDS clusters with their mTLS,
// outlier detection and circuit breakers, assignments with the endpoint
// metadata sidecars read, outbound, inbound, gateway and API listeners,
// virtual hosts and routes, and the SDS secrets.
//
// It is the only place that constructs these messages: the control
// plane's renderer (controlplane/xds) builds what nodes receive with it,
// and so do the sidecar's test harness and the benchmark harness, so that
// tests exercise what the control plane really sends. It decides nothing:
// which resources a node gets, and with what values, is the plan's
// (controlplane/plan).
//
//	c := xdsresource.EDSCluster(xdsresource.Cluster{
//		Name: sp.OutboundCluster(), ConnectTimeout: 5 * time.Second,
//		LB:  clusterv3.Cluster_LEAST_REQUEST,
//		TLS: &xdsresource.UpstreamTLS{SNI: sp.SNI(), SANs: ids, ALPN: xdsresource.ALPN(true)},
//	})
package xdsresource
