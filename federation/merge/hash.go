package merge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"

	"github.com/fedmesh/fedmesh/catalog"
)

// Hash returns a hex SHA-256 digest of what every cluster's view of the
// federation should agree on: the clusters (without the viewer-relative
// RTT) and the merged services. It leaves out Revision and Local, which
// differ from cluster to cluster by design, so two clusters that know the
// same exports and the same fencing have equal hashes.
func Hash(v *catalog.View) string {
	type cluster struct {
		Name string
		Info catalog.ClusterInfo
	}
	clusters := make([]cluster, 0, len(v.Clusters))
	for _, name := range slices.Sorted(maps.Keys(v.Clusters)) {
		ci := v.Clusters[name]
		ci.RTT = 0
		clusters = append(clusters, cluster{Name: name, Info: ci})
	}
	h := sha256.New()
	enc := json.NewEncoder(h)
	// Encoding plain structs, slices and strings cannot fail.
	_ = enc.Encode(clusters)
	_ = enc.Encode(v.Services)
	return hex.EncodeToString(h.Sum(nil))
}
