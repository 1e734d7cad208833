// Package catalog is fedmesh's model of exported services.
//
// A cluster's source (Kubernetes informers or a directory of YAML files)
// produces one Export per exported service: the Service (namespace, name,
// ports, type, when it was exported and by which cluster) and its Endpoints,
// one per address and service port, each with its locality, readiness and
// service account. The control plane writes a cluster's exports to etcd; the
// federation layer replicates every peer's exports and merges them into a
// View, the federation-wide catalog that feeds xDS.
//
// Every type validates itself. Validation errors name the field and say why
// it is wrong, so that a bad object can be reported with its file and name:
//
//	exp := catalog.Export{Service: svc, Endpoints: eps}
//	if err := exp.Validate(); err != nil {
//		// err: `service demo/echo: ports[1].name "http": duplicate port name`
//	}
package catalog
