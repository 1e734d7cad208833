// Package deploy holds fedmesh's Kubernetes installation (base/, a
// kustomize base) and embeds it, so that 'fedmesh install' applies the same
// objects that 'kubectl apply -k' does.
package deploy

import "embed"

// Base is the base/ directory: kustomization.yaml, which lists the
// manifests in the order they are applied, and the manifests themselves.
//
//go:embed base/kustomization.yaml base/*.yaml base/crds/*.yaml
var Base embed.FS
