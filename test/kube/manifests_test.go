package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	mcsclient "sigs.k8s.io/mcs-api/pkg/client/clientset/versioned"
	"sigs.k8s.io/yaml"
)

// deployDir is the repository's deploy/ directory.
var deployDir = filepath.Join("..", "..", "deploy")

// manifest is one object of a file in deploy/.
type manifest struct {
	file string
	obj  *unstructured.Unstructured
}

func (m manifest) String() string {
	return fmt.Sprintf("%s: %s %s/%s", m.file, m.obj.GetKind(), m.obj.GetNamespace(), m.obj.GetName())
}

// readManifests reads every Kubernetes object in the YAML files under dir
// (kustomization files, which are not objects, are left out), in file
// order.
func readManifests(dir string) ([]manifest, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".yaml") || d.Name() == "kustomization.yaml" {
			return nil
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []manifest
	for _, f := range files {
		ms, err := readManifestFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func readManifestFile(path string) ([]manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rel, _ := filepath.Rel(deployDir, path)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []manifest
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", rel, i, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", rel, i, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
			continue // comments only
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", rel, i, err)
		}
		out = append(out, manifest{file: rel, obj: obj})
	}
}

// applier creates objects of any kind through the dynamic client.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(c *apiCluster) (*applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// create creates obj, or with dryRun asks the API server to check it
// without storing it. An object that exists already is not an error.
func (a *applier) create(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) error {
	gvk := obj.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		a.mapper.Reset()
		if mapping, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("%s: %w", gvk, err)
		}
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = a.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	opts := metav1.CreateOptions{FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Create(ctx, obj, opts)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// installCRDs creates the CRDs in deploy/base/crds and waits until the
// MCS API answers.
func installCRDs(ctx context.Context, c *apiCluster) error {
	ms, err := readManifests(filepath.Join(deployDir, "base", "crds"))
	if err != nil {
		return err
	}
	a, err := newApplier(c)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := a.create(ctx, m.obj, false); err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
	}
	mcs, err := mcsclient.NewForConfig(c.cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err1 := mcs.MulticlusterV1alpha1().ServiceExports("default").List(ctx, metav1.ListOptions{})
		_, err2 := mcs.MulticlusterV1alpha1().ServiceImports("default").List(ctx, metav1.ListOptions{})
		if err1 == nil && err2 == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MCS CRDs not served in %s: %v", c.name, errors.Join(err1, err2))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// installFiles creates the objects of the named files of deploy/.
func installFiles(ctx context.Context, c *apiCluster, files ...string) error {
	a, err := newApplier(c)
	if err != nil {
		return err
	}
	for _, f := range files {
		ms, err := readManifestFile(filepath.Join(deployDir, f))
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := a.create(ctx, m.obj, false); err != nil {
				return fmt.Errorf("%s: %w", m, err)
			}
		}
	}
	return nil
}

// asControlPlane returns c's configuration impersonating the control
// plane's ServiceAccount, so that what the control plane does is checked
// against deploy/base/rbac.yaml.
func asControlPlane(c *apiCluster) *rest.Config {
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: controlPlaneSA, Groups: controlPlaneGroups}
	return cfg
}
