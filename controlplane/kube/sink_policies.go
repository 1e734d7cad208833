package kube

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// reconcilePolicyStatus writes the Accepted and ResolvedRefs conditions
// of every AuthorizationPolicy whose conditions differ from what the
// source found (conditions of other types are left alone). An object
// whose conditions already say so is not written, so a status write,
// which the source sees as a change, ends with no further write.
//
// The cache lags behind the sink's own writes: an object still at the
// resourceVersion a write succeeded on is skipped, rather than written
// again and refused as a conflict.
func (s *Sink) reconcilePolicyStatus(ctx context.Context, policies []PolicyStatus) []error {
	var errs []error
	present := make(map[types.UID]bool, len(policies))
	for _, ps := range policies {
		uid := ps.Object.GetUID()
		present[uid] = true
		if rv, ok := s.policyWritten[uid]; ok && rv == ps.Object.GetResourceVersion() {
			continue
		}
		obj, changed, err := policyWithConditions(ps)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !changed {
			continue
		}
		_, err = s.cfg.Clients.Dynamic.Resource(PolicyResource).Namespace(obj.GetNamespace()).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		if s.wrote("AuthorizationPolicy", "update_status", err) != nil {
			errs = append(errs, fmt.Errorf("update status of AuthorizationPolicy %s/%s: %w", obj.GetNamespace(), obj.GetName(), err))
			continue
		}
		s.policyWritten[uid] = ps.Object.GetResourceVersion()
	}
	for uid := range s.policyWritten {
		if !present[uid] {
			delete(s.policyWritten, uid)
		}
	}
	return errs
}

// policyWithConditions returns a copy of ps.Object (an
// AuthorizationPolicy, or another object with status.conditions) with ps.Conditions
// merged into status.conditions, and whether that changed anything. The
// conditions keep their lastTransitionTime while their status stays.
func policyWithConditions(ps PolicyStatus) (*unstructured.Unstructured, bool, error) {
	var status struct {
		Conditions []metav1.Condition `json:"conditions,omitempty"`
	}
	if raw, ok, _ := unstructured.NestedMap(ps.Object.Object, "status"); ok {
		// A status that does not decode (the CRD's schema prevents it)
		// is replaced by ours.
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &status)
	}
	conds := status.Conditions
	if !mergeConditions(&conds, ps.Conditions, ps.Object.GetGeneration()) {
		return nil, false, nil
	}
	list := make([]any, len(conds))
	for i := range conds {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&conds[i])
		if err != nil {
			return nil, false, fmt.Errorf("%s %s/%s: condition %s: %w", ps.Object.GetKind(), ps.Object.GetNamespace(), ps.Object.GetName(), conds[i].Type, err)
		}
		list[i] = m
	}
	obj := ps.Object.DeepCopy()
	if err := unstructured.SetNestedSlice(obj.Object, list, "status", "conditions"); err != nil {
		return nil, false, fmt.Errorf("%s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	return obj, true, nil
}
