// Package install installs fedmesh into a Kubernetes cluster, removes it,
// and checks an installation, as 'fedmesh install', 'fedmesh uninstall'
// and 'fedmesh check' do.
//
// Render turns the embedded deploy/base manifests into the objects for one
// cluster: the ConfigMap fedmesh-cluster gets the cluster's name, region,
// zone, trust domain and gateway address (what deploy/README.md tells
// kustomize users to set in an overlay), the images and the namespace are
// replaced, and every object is labelled app.kubernetes.io/managed-by=fedmesh
// and app.kubernetes.io/part-of=fedmesh.
//
// A Client applies them by server-side apply with the field manager
// "fedmesh" (Force: fedmesh owns the fields it sets; fields other managers
// set, such as the webhook's caBundle, stay), in the kustomization's order
// (CRDs, namespace, RBAC, control plane, gateway, webhook), waits for the
// CRDs to be Established before anything else and, when asked, for the
// workloads to be ready. Applying again changes nothing. A CRD that exists
// already without the managed-by label (Gateway API routes installed by
// someone else) is kept as it is, and Uninstall never deletes it.
// Uninstall deletes what carries the managed-by label, in reverse order;
// CRDs only when asked, because deleting a CRD deletes every object of it
// in every namespace.
//
// EnsureCerts, after Apply, makes the Secrets the manifests cannot carry
// when they are absent: the cluster CA (issued from the federation root)
// and the webhook's serving certificate, whose CA it puts into the
// webhook configuration's caBundle. It never changes an existing Secret;
// Uninstall deletes the ones it made.
//
// Run runs the checks of a cluster before or after installation and
// returns a Report: one pass, fail or skip line per check, each failure
// with a hint. After installation that includes the join Secrets of
// controlplane/kube (check_join.go): the token this cluster publishes,
// and the outcome of a 'fedmesh join' into it.
package install
