package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// Result is what Apply did to one object.
type Result struct {
	// Ref is kind/name, as kubectl prints it.
	Ref string `json:"ref"`
	// Namespace is the object's namespace; empty for cluster-scoped kinds.
	Namespace string `json:"namespace,omitempty"`
	// Action is "created", "configured", "unchanged", or "kept" for a CRD
	// that exists without the managed-by label: installed by someone else,
	// left as it is.
	Action string `json:"action"`
}

// Apply applies objs in order by server-side apply with the field manager
// ManagedBy, and writes one progress line per object to progress. After
// the last CRD it waits up to crdTimeout for every CRD to be Established,
// so that objects of those kinds can follow. An object that is already as
// objs has it is "unchanged": its resourceVersion stays. A CRD that exists
// without the managed-by label is "kept" as it is.
func (c *Client) Apply(ctx context.Context, objs []*unstructured.Unstructured, crdTimeout time.Duration, progress io.Writer) ([]Result, error) {
	lastCRD := -1
	for i, obj := range objs {
		if obj.GetKind() == "CustomResourceDefinition" {
			lastCRD = i
		}
	}
	var out []Result
	for i, obj := range objs {
		r, err := c.apply(ctx, obj)
		if err != nil {
			return out, err
		}
		out = append(out, r)
		fmt.Fprintf(progress, "%s %s\n", r.Ref, r.Action)
		if i == lastCRD {
			if err := c.WaitEstablished(ctx, crdNames(objs), crdTimeout, progress); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func (c *Client) apply(ctx context.Context, obj *unstructured.Unstructured) (Result, error) {
	r := Result{Ref: ref(obj), Namespace: obj.GetNamespace()}
	ri, _, err := c.resource(obj)
	if err != nil {
		return r, err
	}
	before, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		before = nil
	case err != nil:
		return r, fmt.Errorf("get %s: %w", r.Ref, err)
	}
	if before != nil && obj.GetKind() == "CustomResourceDefinition" && before.GetLabels()[ManagedByLabel] != ManagedBy {
		// Someone else's CRD (Gateway API routes installed by another
		// implementation): fedmesh neither takes it over nor, on
		// uninstall, deletes it.
		r.Action = "kept"
		return r, nil
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return r, fmt.Errorf("encode %s: %w", r.Ref, err)
	}
	force := true
	after, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: ManagedBy, Force: &force})
	if err != nil {
		return r, fmt.Errorf("apply %s: %w", r.Ref, err)
	}
	switch {
	case before == nil:
		r.Action = "created"
	case before.GetResourceVersion() == after.GetResourceVersion():
		r.Action = "unchanged"
	default:
		r.Action = "configured"
	}
	return r, nil
}

// crdNames returns the names of the CRDs in objs.
func crdNames(objs []*unstructured.Unstructured) []string {
	var names []string
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			names = append(names, o.GetName())
		}
	}
	return names
}

// errTimeout says a wait ran out of time; the error names what it still
// waited for.
var errTimeout = errors.New("timed out")

// WaitEstablished waits up to timeout until every CRD of names has the
// condition Established, and writes a line to progress as each one does.
func (c *Client) WaitEstablished(ctx context.Context, names []string, timeout time.Duration, progress io.Writer) error {
	pending := slices.Clone(names)
	return c.waitFor(ctx, timeout, func(ctx context.Context) (string, error) {
		var still []string
		for _, n := range pending {
			ok, err := c.crdEstablished(ctx, n)
			if err != nil {
				return "", err
			}
			if ok {
				fmt.Fprintf(progress, "customresourcedefinition/%s established\n", n)
				continue
			}
			still = append(still, n)
		}
		pending = still
		if len(pending) > 0 {
			return fmt.Sprintf("%d CRDs not established: %v", len(pending), pending), nil
		}
		return "", nil
	})
}

// crdEstablished says whether the CRD name has Established=True.
func (c *Client) crdEstablished(ctx context.Context, name string) (bool, error) {
	crd, err := c.dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get customresourcedefinition/%s: %w", name, err)
	}
	return conditionTrue(crd, "Established"), nil
}

// conditionTrue says whether obj's status has condition typ with status
// True.
func conditionTrue(obj *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

// waitFor calls step every pollInterval until it returns "" (done), an
// error, or timeout passes; then the error names the last thing step said
// it waited for. step's requests run under ctx, not under the timeout, so
// that a slow answer near the end is not an error of its own.
func (c *Client) waitFor(ctx context.Context, timeout time.Duration, step func(context.Context) (string, error)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		missing, err := step(ctx)
		if err != nil {
			return err
		}
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s", ctx.Err(), missing)
		case <-deadline.C:
			return fmt.Errorf("%w after %s waiting: %s", errTimeout, timeout, missing)
		case <-t.C:
		}
	}
}

// pollInterval is how often a wait looks again.
const pollInterval = 500 * time.Millisecond
