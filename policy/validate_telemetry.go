package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fedmesh/fedmesh/catalog"
)

// Limits of a TelemetryPolicy.
const (
	// MaxCustomTags is the most custom tags a policy may set.
	MaxCustomTags = 32
	// MaxTagName is the longest custom tag name.
	MaxTagName = 128
	// MaxTagValue is the longest custom tag value.
	MaxTagValue = 256
)

// ReservedTagPrefix starts the names of the attributes the sidecar sets
// itself (fedmesh.cluster, fedmesh.locality, ...); a custom tag may not
// use it.
const ReservedTagPrefix = "fedmesh."

// tagNameRE is a span attribute or log field name: a letter or
// underscore, then letters, digits and _ . - /.
var tagNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_./-]*$`)

func validateTelemetry(fe *fieldErrors, p *TelemetryPolicy) {
	if p.APIVersion != "" && p.APIVersion != APIVersion {
		fe.add("apiVersion", p.APIVersion, "must be "+APIVersion)
	}
	if p.Kind != "" && p.Kind != KindTelemetryPolicy {
		fe.add("kind", p.Kind, "must be "+KindTelemetryPolicy)
	}
	s := &p.Spec
	serviceTargetRefs(fe, "spec.targetRefs", s.TargetRefs)
	if s.Tracing == nil && s.AccessLog == nil {
		fe.add("spec", "", "tracing or accessLog (or both) must be set")
	}
	if t := s.Tracing; t != nil {
		if t.SamplingPercent != nil {
			percent(fe, "spec.tracing.samplingPercent", *t.SamplingPercent)
		}
		customTags(fe, "spec.tracing.customTags", t.CustomTags)
	}
	if a := s.AccessLog; a != nil {
		switch a.Filter {
		case "", AccessLogAll, AccessLogErrors:
		default:
			fe.add("spec.accessLog.filter", short(string(a.Filter)), "must be all or errors")
		}
	}
}

// serviceTargetRefs checks optional targetRefs that name Services of the
// policy's namespace, none twice.
func serviceTargetRefs(fe *fieldErrors, f string, refs []TargetRef) {
	if len(refs) > MaxTargetRefs {
		fe.add(f, "", fmt.Sprintf("%d targetRefs, at most %d", len(refs), MaxTargetRefs))
		return
	}
	seen := map[TargetRef]int{}
	for i, t := range refs {
		tf := fmt.Sprintf("%s[%d]", f, i)
		switch {
		case t.Group == "" && t.Kind == KindService:
		case t.Kind == KindService:
			fe.add(tf+".group", short(t.Group), `must be "" (the core group) for kind Service`)
		default:
			fe.add(tf+".kind", short(t.Kind), `must be Service (group ""): a policy selects the workloads serving it`)
		}
		if why := catalog.IsServiceName(t.Name); why != "" {
			fe.add(tf+".name", short(t.Name), why)
		}
		if first, dup := seen[t]; dup {
			fe.add(tf, t.Name, fmt.Sprintf("the same target as targetRefs[%d]", first))
		} else {
			seen[t] = i
		}
	}
}

// customTags checks tag names and literal values.
func customTags(fe *fieldErrors, f string, tags map[string]string) {
	if len(tags) > MaxCustomTags {
		fe.add(f, "", fmt.Sprintf("%d tags, at most %d", len(tags), MaxCustomTags))
		return
	}
	names := make([]string, 0, len(tags))
	for k := range tags {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := tags[k]
		tf := f + "[" + short(k) + "]"
		switch {
		case len(k) > MaxTagName:
			fe.add(f, short(k), fmt.Sprintf("tag name longer than %d characters", MaxTagName))
			continue
		case !tagNameRE.MatchString(k):
			fe.add(f, short(k), "tag name must start with a letter or _ and hold only letters, digits, _ . - /")
			continue
		case strings.HasPrefix(k, ReservedTagPrefix):
			fe.add(f, k, "tag names starting with "+ReservedTagPrefix+" are the sidecar's own")
			continue
		}
		switch {
		case v == "":
			fe.add(tf, v, "must not be empty (a literal tag has a value)")
		case len(v) > MaxTagValue:
			fe.add(tf, short(v), fmt.Sprintf("longer than %d bytes", MaxTagValue))
		case !utf8.ValidString(v):
			fe.add(tf, short(v), "not valid UTF-8")
		case strings.ContainsFunc(v, unicode.IsControl):
			fe.add(tf, short(v), "holds a control character")
		}
	}
}
