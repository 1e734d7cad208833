package config

import "github.com/fedmesh/fedmesh/topology"

// localityT lets the external tests name topology.Locality briefly.
type LocalityT = topology.Locality
