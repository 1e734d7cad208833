package authz

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Action is what an RBAC filter does with a matching policy.
type Action uint8

// Actions of config.rbac.v3.RBAC.
const (
	// Allow lets a request through only when one of its policies matches.
	Allow Action = iota
	// Deny refuses a request when one of its policies matches.
	Deny
	// Log records a match and never refuses.
	Log
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	case Log:
		return "LOG"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// PolicyRef names one policy of a filter. The control plane names
// policies ns[NAMESPACE]-policy[NAME]-rule[INDEX]; Policy is then
// NAMESPACE/NAME and Rule INDEX. A name of another shape is the Policy
// whole, with HasRule false.
type PolicyRef struct {
	// Key is the name of the policy in the RBAC policies map.
	Key string `json:"key"`
	// Policy is NAMESPACE/NAME of the AuthorizationPolicy.
	Policy string `json:"policy"`
	// Rule is the index of the rule in the AuthorizationPolicy.
	Rule int `json:"rule"`
	// HasRule is false when Key could not be parsed.
	HasRule bool `json:"hasRule"`
}

// parsePolicyName parses ns[NS]-policy[NAME]-rule[INDEX].
func parsePolicyName(key string) *PolicyRef {
	whole := &PolicyRef{Key: key, Policy: key}
	ns, rest, ok := cutBracket(key, "ns[")
	if !ok {
		return whole
	}
	name, rest, ok := cutBracket(rest, "-policy[")
	if !ok {
		return whole
	}
	idx, rest, ok := cutBracket(rest, "-rule[")
	if !ok || rest != "" || ns == "" || name == "" {
		return whole
	}
	n, err := strconv.Atoi(idx)
	if err != nil || n < 0 || strconv.Itoa(n) != idx {
		return whole
	}
	return &PolicyRef{Key: key, Policy: ns + "/" + name, Rule: n, HasRule: true}
}

// cutBracket cuts prefix from s, then the text up to the next "]".
func cutBracket(s, prefix string) (inside, rest string, ok bool) {
	s, ok = strings.CutPrefix(s, prefix)
	if !ok {
		return "", "", false
	}
	i := strings.IndexByte(s, ']')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// policy is a compiled config.rbac.v3.Policy.
type policy struct {
	ref         *PolicyRef
	permissions []node
	principals  []node
}

func (p *policy) match(r *Request) bool {
	return anyMatch(p.permissions, r) && anyMatch(p.principals, r)
}

// Filter is one compiled RBAC filter. It is immutable.
type Filter struct {
	action   Action
	policies []policy // sorted by name
}

// Action returns the filter's action.
func (f *Filter) Action() Action { return f.action }

// Policies returns the names of the filter's policies, sorted.
func (f *Filter) Policies() []string {
	out := make([]string, len(f.policies))
	for i := range f.policies {
		out[i] = f.policies[i].ref.Key
	}
	return out
}

// first returns the first matching policy in name order, or nil.
func (f *Filter) first(r *Request) *PolicyRef {
	for i := range f.policies {
		if f.policies[i].match(r) {
			return f.policies[i].ref
		}
	}
	return nil
}

// Reason says why a request was denied, or that it was audited, in the
// words of the audit trail.
type Reason string

// Reasons.
const (
	// ReasonDenyPolicy: a DENY policy matched.
	ReasonDenyPolicy Reason = "denied by DENY policy"
	// ReasonNoAllow: an ALLOW filter applies and none of its policies
	// matched.
	ReasonNoAllow Reason = "no ALLOW policy matched"
	// ReasonAudited: a LOG (AUDIT) policy matched.
	ReasonAudited Reason = "audited"
)

// Decision is the outcome of one evaluation.
type Decision struct {
	// Allowed is false when a filter denied the request.
	Allowed bool
	// Reason is why it was denied; empty when allowed.
	Reason Reason
	// Policy is the DENY policy that matched; nil when allowed or denied
	// for want of an ALLOW match.
	Policy *PolicyRef
	// Audited are the policies of the LOG filters that matched (the first
	// match of each filter), in filter order; nil when none did.
	Audited []*PolicyRef
}

// Engine is the ordered RBAC filters of one filter chain. It is
// immutable and safe for concurrent use; a nil *Engine allows everything.
type Engine struct {
	filters []*Filter
}

// NewEngine returns an engine that runs filters in order; nil filters
// (configurations without rules) are skipped. It returns nil when no
// filter is left.
func NewEngine(filters ...*Filter) *Engine {
	var fs []*Filter
	for _, f := range filters {
		if f != nil {
			fs = append(fs, f)
		}
	}
	if len(fs) == 0 {
		return nil
	}
	return &Engine{filters: fs}
}

// Filters returns the engine's filters in order.
func (e *Engine) Filters() []*Filter {
	if e == nil {
		return nil
	}
	return e.filters
}

// Authorize runs the filters in order on r: a LOG filter records its first
// matching policy, a DENY filter denies on a match, an ALLOW filter denies
// when nothing matches; the first denial ends the evaluation. It does not
// allocate unless a LOG policy matches.
func (e *Engine) Authorize(r *Request) Decision {
	d := Decision{Allowed: true}
	if e == nil {
		return d
	}
	for _, f := range e.filters {
		switch f.action {
		case Log:
			if p := f.first(r); p != nil {
				d.Audited = append(d.Audited, p)
			}
		case Deny:
			if p := f.first(r); p != nil {
				d.Allowed, d.Reason, d.Policy = false, ReasonDenyPolicy, p
				return d
			}
		case Allow:
			if f.first(r) == nil {
				d.Allowed, d.Reason = false, ReasonNoAllow
				return d
			}
		}
	}
	return d
}

type filterJSON struct {
	Action   string   `json:"action"`
	Policies []string `json:"policies"`
}

// MarshalJSON shows the filters in order with their policy names, for
// config dumps.
func (e *Engine) MarshalJSON() ([]byte, error) {
	out := []filterJSON{}
	for _, f := range e.Filters() {
		out = append(out, filterJSON{Action: f.action.String(), Policies: f.Policies()})
	}
	return json.Marshal(out)
}
