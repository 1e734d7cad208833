package federation

import (
	"testing"

	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/gateway/gatewaytest"
	"github.com/fedmesh/fedmesh/internal/identity"
)

// workloadID is the identity of the data plane's workload.
const workloadID = "spiffe://" + prooftest.TrustDomain + "/ns/demo/sa/default"

// startDataPlane starts cluster's gateway and a workload presenting
// workloadID (gatewaytest), with prooftest's default PKI.
func startDataPlane(t *testing.T, cluster string) *gatewaytest.DataPlane {
	t.Helper()
	pki := prooftest.Default(t)
	cert := pki.Cert(t, cluster, workloadID)
	return gatewaytest.Start(t, cluster, &cert, identity.StaticBundle(pki.Bundle()))
}
