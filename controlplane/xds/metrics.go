package xds

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	nodes        prometheus.Gauge
	rejected     *prometheus.CounterVec
	invalid      *prometheus.CounterVec
	certs        *prometheus.CounterVec
	builds       prometheus.Counter
	flushSeconds prometheus.Histogram
	conns        prometheus.Gauge
	connsClosed  *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_xds_connected_nodes", Help: "Nodes with at least one open xDS stream.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_xds_rejected_total", Help: "xDS streams or requests refused, by reason.",
		}, []string{"reason"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_xds_snapshot_invalid_total", Help: "Snapshots or views not applied because they failed validation, by reason.",
		}, []string{"reason"}),
		certs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_xds_certificates_issued_total", Help: "Workload certificates issued or renewed, by result.",
		}, []string{"result"}),
		builds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedmesh_xds_snapshots_set_total", Help: "Per-node snapshots built and set in the cache.",
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fedmesh_xds_flush_seconds", Help: "Time to rebuild and set every due snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedmesh_xds_connections", Help: "Open connections on the xDS listener, authenticated or not.",
		}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_xds_connections_closed_total",
			Help: "xDS connections closed by the server's limits, by reason: limit (past the connection cap), auth_timeout (no stream authenticated in time).",
		}, []string{"reason"}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.nodes, m.rejected, m.invalid, m.certs, m.builds, m.flushSeconds, m.conns, m.connsClosed} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
