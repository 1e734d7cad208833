package install

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// UninstallOptions say what Uninstall removes.
type UninstallOptions struct {
	// CRDs also deletes the CustomResourceDefinitions, and with them every
	// ServiceExport, ServiceImport, route and fedmesh policy in every
	// namespace. Off by default: a reinstall then finds them all again.
	CRDs bool
	// Wait waits up to Timeout until what was deleted is gone. A
	// Namespace is left terminating: the namespace controller finishes it.
	Wait    bool
	Timeout time.Duration
}

// Kinds returns the distinct kinds of objs in their first order.
func Kinds(objs []*unstructured.Unstructured) []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for _, o := range objs {
		if gvk := o.GroupVersionKind(); !slices.Contains(out, gvk) {
			out = append(out, gvk)
		}
	}
	return out
}

// Labelled lists every object of the kinds in kinds that carries the
// managed-by label, in every namespace. A kind the API server does not
// serve (CRDs already gone) has none.
func (c *Client) Labelled(ctx context.Context, kinds []schema.GroupVersionKind) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	sel := metav1.ListOptions{LabelSelector: ManagedByLabel + "=" + ManagedBy}
	for _, gvk := range kinds {
		probe := &unstructured.Unstructured{}
		probe.SetGroupVersionKind(gvk)
		_, mapping, err := c.resource(probe)
		if err != nil {
			continue // not served: nothing of it can be left
		}
		list, err := c.dyn.Resource(mapping.Resource).List(ctx, sel)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", mapping.Resource.Resource, err)
		}
		for i := range list.Items {
			it := list.Items[i]
			it.SetGroupVersionKind(gvk)
			out = append(out, &it)
		}
	}
	return out, nil
}

// SecretKind is the kind of the Secrets EnsureCerts creates, which
// Uninstall deletes with the rest (they are not among Render's objects).
var SecretKind = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}

// Uninstall deletes what carries the managed-by label among the kinds of
// objs (Render's output) and the Secrets EnsureCerts made, in the reverse
// of their order, and returns what it deleted. CRDs only with o.CRDs.
func (c *Client) Uninstall(ctx context.Context, objs []*unstructured.Unstructured, o UninstallOptions, progress io.Writer) ([]Result, error) {
	kinds := Kinds(objs)
	if !o.CRDs {
		kinds = slices.DeleteFunc(kinds, func(g schema.GroupVersionKind) bool { return g.Kind == "CustomResourceDefinition" })
	}
	slices.Reverse(kinds)
	// The Secrets EnsureCerts made carry the label too; they go before
	// their namespace.
	kinds = append([]schema.GroupVersionKind{SecretKind}, kinds...)
	found, err := c.Labelled(ctx, kinds)
	if err != nil {
		return nil, err
	}
	var out []Result
	bg := metav1.DeletePropagationBackground
	for _, obj := range found {
		if obj.GetKind() == "CustomResourceDefinition" && obj.GetDeletionTimestamp() == nil {
			if err := c.countInstances(ctx, obj, o.Timeout, progress); err != nil {
				return out, err
			}
		}
		ri, _, err := c.resource(obj)
		if err != nil {
			return out, err
		}
		r := Result{Ref: ref(obj), Namespace: obj.GetNamespace(), Action: "deleted"}
		err = ri.Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("delete %s: %w", r.Ref, err)
		}
		out = append(out, r)
		fmt.Fprintf(progress, "%s deleted\n", r.Ref)
	}
	if !o.Wait {
		return out, nil
	}
	err = c.waitFor(ctx, o.Timeout, func(ctx context.Context) (string, error) {
		left, err := c.Labelled(ctx, kinds)
		if err != nil {
			return "", err
		}
		var names []string
		for _, l := range left {
			if l.GetKind() == "Namespace" && l.GetDeletionTimestamp() != nil {
				continue
			}
			names = append(names, ref(l))
		}
		if len(names) > 0 {
			return fmt.Sprintf("still there: %v", names), nil
		}
		return "", nil
	})
	return out, err
}

// countInstances lists the objects of crd in every namespace and says how
// many its deletion deletes. Listing first also has the API server make
// the kind's storage ready, which the CRD's own cleanup needs: a CRD
// deleted while its storage is (re)initializing stays Terminating for
// minutes (the cleanup's retries back off). A list that fails is retried
// until timeout.
func (c *Client) countInstances(ctx context.Context, crd *unstructured.Unstructured, timeout time.Duration, progress io.Writer) error {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	version := ""
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if served, _ := m["served"].(bool); served {
			version, _ = m["name"].(string)
			break
		}
	}
	if version == "" {
		return nil // serves nothing: has nothing to list
	}
	gvr := schema.GroupVersionResource{Group: group, Version: version, Resource: plural}
	var lastErr error
	err := c.waitFor(ctx, timeout, func(ctx context.Context) (string, error) {
		list, err := c.dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			lastErr = err
			return fmt.Sprintf("list %s: %v", gvr.Resource, err), nil
		}
		if n := len(list.Items); n > 0 {
			fmt.Fprintf(progress, "%s: %d objects of it are deleted with it\n", ref(crd), n)
		}
		return "", nil
	})
	if err != nil && lastErr != nil {
		return fmt.Errorf("%w (last error: %w)", err, lastErr)
	}
	return err
}
