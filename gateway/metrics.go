package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/internal/naming"
)

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	active         prometheus.Gauge
	accepted       *prometheus.CounterVec // destination_service, source_cluster
	refused        *prometheus.CounterVec // reason, service, source_cluster
	bytes          *prometheus.CounterVec // direction, destination_service, source_cluster
	probes         *prometheus.CounterVec // source_cluster
	selfProbes     *prometheus.CounterVec // result
	dialErrors     *prometheus.CounterVec // service
	idleClosed     prometheus.Counter
	routes         prometheus.Gauge
	configRejected prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_gateway_connections_active", Help: "Connections open now.",
		}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_gateway_connections_total", Help: "Connections routed to an endpoint, by destination service (NAME.NS.svc.clusterset.local) and source cluster (the federation member the peer address belongs to, else unknown).",
		}, []string{"destination_service", "source_cluster"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_gateway_refused_total", Help: "Connections refused, by reason; nothing was forwarded.",
		}, []string{"reason", "service", "source_cluster"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_gateway_bytes_total", Help: "Bytes spliced, by direction (in: client to endpoint), destination service and source cluster, counted as they are copied.",
		}, []string{"direction", "destination_service", "source_cluster"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_gateway_probe_connections_total", Help: "Connections routed for peer control planes' gateway probes (ALPN " + naming.ProbeALPN + "), by source cluster; not counted as traffic.",
		}, []string{"source_cluster"}),
		selfProbes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_gateway_self_probes_total", Help: "Peer control planes' probes of the gateway itself (server name " + naming.GatewayProbeSNI + "), which it answers with its own SVID, by result: ok, or why the prober or the gateway was not accepted.",
		}, []string{"result"}),
		dialErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_gateway_dial_errors_total", Help: "Failed dials to local endpoints.",
		}, []string{"service"}),
		idleClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_gateway_idle_closed_total", Help: "Connections closed after the idle timeout.",
		}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_gateway_routes", Help: "Exported service ports routed.",
		}),
		configRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_gateway_config_rejected_total", Help: "Route updates rejected; the previous routes stay.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.active, m.accepted, m.refused, m.bytes, m.probes, m.selfProbes, m.dialErrors, m.idleClosed, m.routes, m.configRejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register gateway metrics: %w", err)
		}
	}
	return m, nil
}
