// Package modpin keeps the project's direct module requirements in go.mod
// while the packages that use them are being written, so that `go mod tidy`
// does not drop them. Delete an import here once a real package imports it.
package modpin

import (
	_ "github.com/cenkalti/backoff/v4"
	_ "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	_ "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/hashicorp/serf/serf"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "github.com/spiffe/go-spiffe/v2/spiffeid"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "go.uber.org/goleak"
	_ "golang.org/x/sync/errgroup"
	_ "google.golang.org/grpc/xds"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/tools/leaderelection"
	_ "sigs.k8s.io/mcs-api/pkg/apis/v1alpha1"
	_ "sigs.k8s.io/yaml"
)
