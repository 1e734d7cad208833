package catalog

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// MaxEndpointLabels bounds the labels an endpoint carries.
const MaxEndpointLabels = 64

// EndpointLabels returns what an endpoint carries of a workload's labels:
// the pairs with a valid key and a non-empty valid value, at most
// MaxEndpointLabels of them (the first keys in sorted order), or nil when
// none is left. An empty value is carried as no label: failoverPriority
// treats the two alike. labels is not modified.
func EndpointLabels(labels map[string]string) map[string]string {
	var keys []string
	for k, v := range labels {
		if v != "" && ValidateLabel(k, v) == "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	keys = keys[:min(len(keys), MaxEndpointLabels)]
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = labels[k]
	}
	return out
}

// ValidateLabel reports why k=v is not a Kubernetes label, or "" when it
// is one. The checks are apimachinery's IsQualifiedName and
// IsValidLabelValue.
func ValidateLabel(k, v string) string {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return fmt.Sprintf("key %q: %s", k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return fmt.Sprintf("value %q of key %q: %s", v, k, strings.Join(errs, "; "))
	}
	return ""
}

// validateLabelsInto adds a field error for each invalid or empty label
// of labels, and one for more than MaxEndpointLabels.
func validateLabelsInto(fe *fieldErrors, field string, labels map[string]string) {
	if len(labels) > MaxEndpointLabels {
		fe.add(field, fmt.Sprint(len(labels)), fmt.Sprintf("must hold at most %d labels", MaxEndpointLabels))
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := labels[k]
		if v == "" {
			fe.add(field+"["+k+"]", "", "must not be empty (leave the label out)")
		} else if why := ValidateLabel(k, v); why != "" {
			fe.add(field, k, why)
		}
	}
}
