package controlplane

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/controlplane/ca"
)

// etcdRootTTL is the lifetime of the store client's own certificate; it
// is capped at the intermediate's and re-issued whenever the CA changes.
const etcdRootTTL = 10 * 365 * 24 * time.Hour

// renewEtcdRoot issues the store client's certificate from the current
// intermediate.
func (m *mesh) renewEtcdRoot() error {
	is, err := m.auth.IssueEtcdRoot(etcdRootTTL)
	if err != nil {
		return fmt.Errorf("issue etcd root certificate: %w", err)
	}
	m.etcdRoot.Store(is.TLS)
	return nil
}

// followCA reads the CA directory every CAReloadInterval until ctx is
// done. When `fedmesh ca rotate` changed it (a new intermediate, roots
// added to or removed from the bundle), it takes the change: the
// bundle file the embedded etcd checks clients with is rewritten, the
// control plane's and the store client's certificates are re-issued from
// the current intermediate, and every workload certificate is re-issued
// and pushed with the new bundle over SDS (xds.Server.RenewCertificates).
// A directory that does not load (caught half written) leaves everything
// as it was and is read again at the next tick.
func (s *Server) followCA(ctx context.Context, m *mesh) error {
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "fedmesh_ca_reloads_total",
		Help:        "Reads of the cluster CA directory that found a change, by result (ok, error: the change was not taken and the last good CA stays).",
		ConstLabels: prometheus.Labels{"cluster": s.cfg.Cluster},
	}, []string{"result"})
	if s.cfg.Registry != nil {
		if err := s.cfg.Registry.Register(reloads); err != nil {
			return fmt.Errorf("register CA reload metrics: %w", err)
		}
	}
	dir := s.cfg.Mesh.CADir
	t := time.NewTicker(s.cfg.Mesh.CAReloadInterval)
	defer t.Stop()
	var (
		lastErr string
		pending bool // a change taken whose certificates are not all re-issued yet
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		changed, err := m.auth.Reload(dir)
		if err != nil {
			if err.Error() != lastErr {
				reloads.WithLabelValues("error").Inc()
				s.log.Warn("cluster CA directory not reloaded; the current CA stays", "dir", dir, "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		if !changed && !pending {
			continue
		}
		if changed {
			reloads.WithLabelValues("ok").Inc()
			s.log.Info("cluster CA changed: re-issuing certificates from it and pushing its trust bundle",
				"intermediate", ca.Fingerprint(m.auth.CACertificate())[:16], "roots", len(m.auth.TrustBundle()))
		}
		pending = false
		if err := s.applyCA(ctx, m); err != nil {
			s.log.Warn("certificates not all re-issued after a CA change; retrying", "err", err)
			pending = true
		}
	}
}

// applyCA puts the Authority's current CA into use.
func (s *Server) applyCA(ctx context.Context, m *mesh) error {
	if err := writeFileAtomic(filepath.Join(m.tlsDir, "bundle.crt"), m.auth.BundlePEM(), 0o644); err != nil {
		return err
	}
	// Workloads first: their new certificates and bundle reach them
	// while the control plane is being re-issued.
	m.xdsServer.RenewCertificates()
	c, err := m.renewCP(ctx)
	if err != nil {
		return fmt.Errorf("control plane certificate: %w", err)
	}
	if err := m.cpCert.SetCertificate(c); err != nil {
		return err
	}
	return m.renewEtcdRoot()
}
