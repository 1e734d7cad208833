package kube

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// reconcileTrafficStatus writes the status of every traffic object whose
// status differs from what the source found: a route's status.parents
// entries of ControllerName (other controllers' entries are left alone),
// a policy's Accepted and ResolvedRefs conditions (others are left
// alone). An object whose status already says so is not written, so a
// status write, which the source sees as a change, ends with no further
// write.
//
// The cache lags behind the sink's own writes: an object still at the
// resourceVersion a write succeeded on is skipped, rather than written
// again and refused as a conflict.
func (s *Sink) reconcileTrafficStatus(ctx context.Context, statuses []TrafficStatus) []error {
	var errs []error
	present := make(map[types.UID]bool, len(statuses))
	for _, ts := range statuses {
		uid := ts.Object.GetUID()
		present[uid] = true
		if rv, ok := s.trafficWritten[uid]; ok && rv == ts.Object.GetResourceVersion() {
			continue
		}
		kind := ts.Object.GetKind()
		var obj *unstructured.Unstructured
		var changed bool
		var err error
		if ts.Resource == HTTPRouteResource || ts.Resource == GRPCRouteResource {
			obj, changed, err = routeWithParents(ts)
		} else {
			obj, changed, err = policyWithConditions(PolicyStatus{Object: ts.Object, Conditions: ts.Conditions})
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !changed {
			continue
		}
		_, err = s.cfg.Clients.Dynamic.Resource(ts.Resource).Namespace(obj.GetNamespace()).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		if s.wrote(kind, "update_status", err) != nil {
			errs = append(errs, fmt.Errorf("update status of %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err))
			continue
		}
		s.trafficWritten[uid] = ts.Object.GetResourceVersion()
	}
	for uid := range s.trafficWritten {
		if !present[uid] {
			delete(s.trafficWritten, uid)
		}
	}
	return errs
}

// routeWithParents returns a copy of ts.Object whose status.parents
// holds ts.Parents as ControllerName's entries (other controllers'
// entries first, as they were), and whether that changed anything. A
// condition keeps its lastTransitionTime while its status stays.
func routeWithParents(ts TrafficStatus) (*unstructured.Unstructured, bool, error) {
	var status struct {
		Parents []gatewayv1.RouteParentStatus `json:"parents,omitempty"`
	}
	if raw, ok, _ := unstructured.NestedMap(ts.Object.Object, "status"); ok {
		// A status that does not decode (the CRD's schema prevents it)
		// is replaced by ours.
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &status)
	}
	var next []gatewayv1.RouteParentStatus
	var ours []gatewayv1.RouteParentStatus
	for _, p := range status.Parents {
		if p.ControllerName == ControllerName {
			ours = append(ours, p)
		} else {
			next = append(next, p)
		}
	}
	for _, want := range ts.Parents {
		entry := gatewayv1.RouteParentStatus{ParentRef: want.ParentRef, ControllerName: ControllerName}
		for _, have := range ours {
			if reflect.DeepEqual(have.ParentRef, want.ParentRef) {
				entry.Conditions = slices.Clone(have.Conditions)
				break
			}
		}
		// Only the conditions fedmesh sets are kept.
		entry.Conditions = slices.DeleteFunc(entry.Conditions, func(c metav1.Condition) bool {
			return !slices.ContainsFunc(want.Conditions, func(w metav1.Condition) bool { return w.Type == c.Type })
		})
		for _, c := range want.Conditions {
			meta.SetStatusCondition(&entry.Conditions, c)
		}
		next = append(next, entry)
	}
	if equalParents(status.Parents, next) {
		return nil, false, nil
	}
	list := make([]any, len(next))
	for i := range next {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&next[i])
		if err != nil {
			return nil, false, fmt.Errorf("%s %s/%s: status.parents[%d]: %w", ts.Object.GetKind(), ts.Object.GetNamespace(), ts.Object.GetName(), i, err)
		}
		list[i] = m
	}
	obj := ts.Object.DeepCopy()
	if err := unstructured.SetNestedSlice(obj.Object, list, "status", "parents"); err != nil {
		return nil, false, fmt.Errorf("%s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	return obj, true, nil
}

// equalParents compares two status.parents lists.
func equalParents(a, b []gatewayv1.RouteParentStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ControllerName != b[i].ControllerName || !reflect.DeepEqual(a[i].ParentRef, b[i].ParentRef) || len(a[i].Conditions) != len(b[i].Conditions) {
			return false
		}
		for j := range a[i].Conditions {
			x, y := a[i].Conditions[j], b[i].Conditions[j]
			if !x.LastTransitionTime.Equal(&y.LastTransitionTime) {
				return false
			}
			x.LastTransitionTime, y.LastTransitionTime = metav1.Time{}, metav1.Time{}
			if x != y {
				return false
			}
		}
	}
	return true
}
