package install

import (
	"context"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// workloadReady says whether a Deployment or StatefulSet is ready, and
// how far it is: "1/2 available". Other kinds are always ready.
func workloadReady(obj *unstructured.Unstructured) (bool, string) {
	want, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	if !found {
		want = 1
	}
	gen := obj.GetGeneration()
	observed, _, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	var have int64
	var what string
	switch obj.GetKind() {
	case "Deployment":
		have, _, _ = unstructured.NestedInt64(obj.Object, "status", "availableReplicas")
		what = "available"
		if observed >= gen && have >= want && conditionTrue(obj, "Available") {
			return true, fmt.Sprintf("%d/%d %s", have, want, what)
		}
	case "StatefulSet":
		have, _, _ = unstructured.NestedInt64(obj.Object, "status", "readyReplicas")
		what = "ready"
		if observed >= gen && have >= want {
			return true, fmt.Sprintf("%d/%d %s", have, want, what)
		}
	default:
		return true, ""
	}
	return false, fmt.Sprintf("%d/%d %s", have, want, what)
}

// isWorkload says whether WaitWorkloads waits for obj.
func isWorkload(obj *unstructured.Unstructured) bool {
	return obj.GetKind() == "Deployment" || obj.GetKind() == "StatefulSet"
}

// WaitWorkloads waits up to timeout until every Deployment of objs is
// available and every StatefulSet ready, writing a progress line whenever
// one's count changes.
func (c *Client) WaitWorkloads(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration, progress io.Writer) error {
	last := map[string]string{}
	return c.waitFor(ctx, timeout, func(ctx context.Context) (string, error) {
		var missing []string
		for _, o := range objs {
			if !isWorkload(o) {
				continue
			}
			ri, _, err := c.resource(o)
			if err != nil {
				return "", err
			}
			cur, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				missing = append(missing, ref(o)+" missing")
				continue
			}
			if err != nil {
				return "", fmt.Errorf("get %s: %w", ref(o), err)
			}
			ok, how := workloadReady(cur)
			if last[ref(o)] != how {
				last[ref(o)] = how
				fmt.Fprintf(progress, "%s: %s\n", ref(o), how)
			}
			if !ok {
				missing = append(missing, ref(o)+" "+how)
			}
		}
		if len(missing) > 0 {
			return fmt.Sprint(missing), nil
		}
		return "", nil
	})
}
