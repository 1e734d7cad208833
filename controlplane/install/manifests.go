package install

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/fedmesh/fedmesh/federation/membership"
)

// Labels every installed object carries; Uninstall finds them by the first.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	PartOfLabel    = "app.kubernetes.io/part-of"
	// ManagedBy is the value of ManagedByLabel, and the field manager of
	// the server-side apply.
	ManagedBy = "fedmesh"
	// DefaultNamespace is where the base installs the control plane.
	DefaultNamespace = "fedmesh-system"
	// ClusterConfigMap holds the cluster's identity.
	ClusterConfigMap = "fedmesh-cluster"
)

// Base image references in deploy/base, replaced by Options.Image and
// Options.InitImage.
const (
	baseImage     = "fedmesh:dev"
	baseInitImage = "fedmesh-init:dev"
)

// Options say who the cluster is and what to install.
type Options struct {
	// Cluster is the cluster's name in the federation (a DNS-1123 label).
	Cluster string
	// Region and Zone are the cluster's locality; Region is required.
	Region, Zone string
	// TrustDomain is the federation's SPIFFE trust domain.
	TrustDomain string
	// GatewayAddress is host:port where peers reach this cluster's
	// east-west gateway; empty leaves the base's placeholder, to be set
	// when the gateway's load balancer has an address.
	GatewayAddress string
	// Namespace is where the control plane, gateway and webhook run;
	// empty means DefaultNamespace.
	Namespace string
	// Image and InitImage replace the base's fedmesh:dev and
	// fedmesh-init:dev; empty keeps them.
	Image, InitImage string
}

// validate checks o once, naming the first field that is wrong.
func (o Options) validate() error {
	if !membership.IsClusterName(o.Cluster) {
		return fmt.Errorf("cluster name %q is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)", o.Cluster)
	}
	if o.Region == "" {
		return errors.New("region is empty: every cluster needs a region (for example us-east)")
	}
	if o.TrustDomain == "" {
		return errors.New("trust domain is empty")
	}
	if errs := validation.IsDNS1123Label(o.namespace()); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", o.namespace(), strings.Join(errs, "; "))
	}
	return nil
}

func (o Options) namespace() string {
	if o.Namespace == "" {
		return DefaultNamespace
	}
	return o.Namespace
}

// kustomization is the part of kustomization.yaml Render reads.
type kustomization struct {
	Resources []string `json:"resources"`
}

// Render reads base/kustomization.yaml in fsys and returns the objects of
// its resources, in its order, for the cluster o describes.
func Render(fsys fs.FS, o Options) ([]*unstructured.Unstructured, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	data, err := fs.ReadFile(fsys, "base/kustomization.yaml")
	if err != nil {
		return nil, fmt.Errorf("read the embedded manifests: %w", err)
	}
	var k kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("base/kustomization.yaml: %w", err)
	}
	if len(k.Resources) == 0 {
		return nil, errors.New("base/kustomization.yaml lists no resources")
	}
	var out []*unstructured.Unstructured
	for _, r := range k.Resources {
		file := path.Join("base", r)
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		objs, err := decode(file, data)
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			if err := o.substitute(obj); err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", file, obj.GetKind(), obj.GetName(), err)
			}
			out = append(out, obj)
		}
	}
	return out, nil
}

// decode returns the objects of a multi-document YAML file; documents of
// comments only are left out.
func decode(file string, data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if obj.GetName() == "" {
			return nil, fmt.Errorf("%s: document %d: %s has no name", file, i, obj.GetKind())
		}
		out = append(out, obj)
	}
}

// substitute makes obj this cluster's: labels, namespace, images, and the
// cluster's identity in the ConfigMap.
func (o Options) substitute(obj *unstructured.Unstructured) error {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ManagedBy
	labels[PartOfLabel] = "fedmesh"
	obj.SetLabels(labels)
	if obj.GetKind() == "CustomResourceDefinition" {
		return nil // schemas and their descriptions stay as written
	}
	ns := o.namespace()
	var repl []string // old, new pairs, applied in order
	if ns != DefaultNamespace {
		repl = append(repl, DefaultNamespace, ns)
	}
	if o.Image != "" {
		repl = append(repl, baseImage, o.Image)
	}
	if o.InitImage != "" {
		repl = append(repl, baseInitImage, o.InitImage)
	}
	if len(repl) > 0 {
		obj.Object = replaceStrings(obj.Object, strings.NewReplacer(repl...)).(map[string]any)
	}
	if obj.GetKind() == "ConfigMap" && obj.GetName() == ClusterConfigMap {
		data := map[string]any{
			"cluster":     o.Cluster,
			"region":      o.Region,
			"zone":        o.Zone,
			"trustDomain": o.TrustDomain,
		}
		if o.GatewayAddress != "" {
			data["gatewayAddress"] = o.GatewayAddress
		}
		for k, v := range data {
			if err := unstructured.SetNestedField(obj.Object, v, "data", k); err != nil {
				return err
			}
		}
	}
	return nil
}

// replaceStrings returns v with r applied to every string value (not to
// map keys). The namespace is replaced
// wherever it is named: metadata, RBAC subjects, the webhook's service,
// Service DNS names in arguments, NetworkPolicy selectors.
func replaceStrings(v any, r *strings.Replacer) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = replaceStrings(e, r)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = replaceStrings(e, r)
		}
		return v
	case string:
		return r.Replace(v)
	}
	return v
}
