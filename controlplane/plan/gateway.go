package plan

import (
	"slices"

	"github.com/fedmesh/fedmesh/catalog"
)

// GatewayServices are the services a gateway of the local cluster routes
// to: those the local cluster exports, in view order. Each service port's
// SNI names its route and its EDS cluster.
func (p *Plan) GatewayServices() []*catalog.ImportedService {
	var out []*catalog.ImportedService
	for i := range p.view.Services {
		if svc := &p.view.Services[i]; slices.Contains(svc.Clusters, p.view.Local) {
			out = append(out, svc)
		}
	}
	return out
}
