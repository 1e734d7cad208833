package sidecar

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/fedmesh/fedmesh/internal/xdsclient"
	"github.com/fedmesh/fedmesh/sidecar/config"
)

// persistIn sets up the xDS client's data directory, DataDir/xds: the
// accepted resources, the SDS certificate, key and bundle among them, in
// 0600 files; and the check of what a start may serve from it.
func persistIn(cfg Config, x *xdsclient.Config) {
	x.RestoreAfter = cfg.RestoreAfter
	if cfg.DataDir == "" {
		return
	}
	x.DataDir = filepath.Join(cfg.DataDir, "xds")
	x.CheckRestored = func(us []xdsclient.Update) error { return checkRestored(cfg.TrustDomain, us, time.Now()) }
}

// checkRestored vets the persisted state before the sidecar serves from
// it: the whole set must build (as the control plane's would) and carry a
// workload certificate and a trust bundle, and the certificate must be
// valid at now. A sidecar never serves with an expired certificate: it
// waits for the control plane instead, and says so on /ready.
func checkRestored(td spiffeid.TrustDomain, updates []xdsclient.Update, now time.Time) error {
	b := config.NewBuilder(td)
	var snap *config.Snapshot
	for _, u := range updates {
		s, err := b.Apply(u)
		if err != nil {
			return fmt.Errorf("persisted configuration: %w", err)
		}
		snap = s
	}
	switch {
	case snap == nil || snap.Certificate == nil || snap.Certificate.Leaf == nil:
		return errors.New("no persisted workload certificate")
	case snap.Bundle == nil:
		return errors.New("no persisted trust bundle")
	}
	leaf := snap.Certificate.Leaf
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("persisted workload certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("persisted workload certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}
