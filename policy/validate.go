package policy

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/fedmesh/fedmesh/catalog"
)

// Limits that keep one policy, and what it renders to, small.
const (
	// MaxRules is the most rules one policy may hold.
	MaxRules = 1024
	// MaxValues is the most values one field (principals, paths ...)
	// may hold.
	MaxValues = 256
	// MaxValueLength is the longest value accepted.
	MaxValueLength = 1024
)

var (
	// trustDomainRE is a SPIFFE trust domain: lower-case letters, digits,
	// dots, dashes and underscores.
	trustDomainRE = regexp.MustCompile(`^[a-z0-9._-]+$`)
	// spiffePathRE is a SPIFFE ID path: segments of letters, digits,
	// dots, dashes and underscores.
	spiffePathRE = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
	// nameCharsRE are the characters of namespace and cluster globs.
	nameCharsRE = regexp.MustCompile(`^[a-z0-9-]*$`)
	// methodRE is an HTTP method token (RFC 9110).
	methodRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	// headerNameRE is a lower-case HTTP header name token.
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9a-z-]+$")
	// grpcServiceRE is a fully qualified protobuf service name.
	grpcServiceRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	// grpcMethodRE is a protobuf method name.
	grpcMethodRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks a policy whose namespace is set. The error is a
// *catalog.ValidationError listing every wrong field with its reason
// ("spec.rules[0].from[1].source.principals[0] \"a*b\": ...").
func Validate(p *AuthorizationPolicy) error {
	var fe fieldErrors
	if p.APIVersion != "" && p.APIVersion != APIVersion {
		fe.add("apiVersion", p.APIVersion, "must be "+APIVersion)
	}
	if p.Kind != "" && p.Kind != Kind {
		fe.add("kind", p.Kind, "must be "+Kind)
	}
	if why := catalog.IsDNS1123Subdomain(p.Name); why != "" {
		fe.add("metadata.name", p.Name, why)
	}
	if why := catalog.IsDNS1123Label(p.Namespace); why != "" {
		fe.add("metadata.namespace", p.Namespace, why)
	}
	s := &p.Spec
	switch s.Action {
	case "", ActionAllow, ActionDeny, ActionAudit:
	default:
		fe.add("spec.action", string(s.Action), "must be ALLOW, DENY or AUDIT")
	}
	for i, t := range s.TargetRefs {
		f := fmt.Sprintf("spec.targetRefs[%d]", i)
		if t.Group != "" {
			fe.add(f+".group", t.Group, `must be "" (the core group of Service)`)
		}
		if t.Kind != "Service" {
			fe.add(f+".kind", t.Kind, "must be Service")
		}
		if why := catalog.IsServiceName(t.Name); why != "" {
			fe.add(f+".name", t.Name, why)
		}
	}
	if len(s.Rules) > MaxRules {
		fe.add("spec.rules", "", fmt.Sprintf("%d rules, at most %d", len(s.Rules), MaxRules))
		return fe.err(objectName(p))
	}
	for i := range s.Rules {
		validateRule(&fe, fmt.Sprintf("spec.rules[%d]", i), &s.Rules[i])
	}
	return fe.err(objectName(p))
}

func objectName(p *AuthorizationPolicy) string {
	return Kind + " " + p.Namespace + "/" + p.Name
}

func validateRule(fe *fieldErrors, path string, r *Rule) {
	for i := range r.From {
		src := &r.From[i].Source
		f := fmt.Sprintf("%s.from[%d].source", path, i)
		globs(fe, f+".principals", src.Principals, principalGlob)
		globs(fe, f+".notPrincipals", src.NotPrincipals, principalGlob)
		globs(fe, f+".namespaces", src.Namespaces, nameGlob)
		globs(fe, f+".notNamespaces", src.NotNamespaces, nameGlob)
		globs(fe, f+".clusters", src.Clusters, nameGlob)
		globs(fe, f+".notClusters", src.NotClusters, nameGlob)
	}
	for i := range r.To {
		op := &r.To[i].Operation
		f := fmt.Sprintf("%s.to[%d].operation", path, i)
		ports(fe, f+".ports", op.Ports)
		ports(fe, f+".notPorts", op.NotPorts)
		globs(fe, f+".methods", op.Methods, method)
		globs(fe, f+".notMethods", op.NotMethods, method)
		globs(fe, f+".paths", op.Paths, pathGlob)
		globs(fe, f+".notPaths", op.NotPaths, pathGlob)
		if g := op.GRPC; g != nil {
			if !grpcServiceRE.MatchString(g.Service) {
				fe.add(f+".grpc.service", g.Service, "must be a fully qualified gRPC service name such as pkg.v1.Greeter")
			}
			if g.Method != "" && !grpcMethodRE.MatchString(g.Method) {
				fe.add(f+".grpc.method", g.Method, "must be a gRPC method name such as SayHello")
			}
		}
	}
	for i := range r.When {
		c := &r.When[i]
		f := fmt.Sprintf("%s.when[%d]", path, i)
		name, ok := c.Header()
		switch {
		case !ok:
			fe.add(f+".key", c.Key, "must be request.headers[NAME]; no other key is supported")
		case !headerNameRE.MatchString(name):
			fe.add(f+".key", c.Key, "the header name is not an HTTP token")
		case strings.HasPrefix(name, ":"):
			fe.add(f+".key", c.Key, "pseudo-headers are matched with to.operation")
		}
		if len(c.Values) == 0 && len(c.NotValues) == 0 {
			fe.add(f, "", "values or notValues must be set")
		}
		globs(fe, f+".values", c.Values, headerGlob)
		globs(fe, f+".notValues", c.NotValues, headerGlob)
	}
}

// globs checks every value of a field with check, which returns why a
// value is wrong or "".
func globs(fe *fieldErrors, path string, values []string, check func(string) string) {
	if len(values) > MaxValues {
		fe.add(path, "", fmt.Sprintf("%d values, at most %d", len(values), MaxValues))
		return
	}
	for i, v := range values {
		f := fmt.Sprintf("%s[%d]", path, i)
		if len(v) > MaxValueLength {
			fe.add(f, v[:32]+"...", fmt.Sprintf("longer than %d characters", MaxValueLength))
			continue
		}
		if why := check(v); why != "" {
			fe.add(f, v, why)
		}
	}
}

const globForms = `a glob is "*", "prefix*", "*suffix" or an exact value`

// parseGlob returns the glob or why s is not one.
func parseGlob(s string) (Glob, string) {
	if s == "" {
		return Glob{}, "must not be empty"
	}
	g, ok := ParseGlob(s)
	if !ok {
		return g, `"*" may only stand alone or at the start or end: ` + globForms
	}
	return g, ""
}

func principalGlob(s string) string {
	g, why := parseGlob(s)
	if why != "" {
		return why
	}
	switch g.Kind {
	case GlobAny, GlobSuffix:
		return ""
	case GlobPrefix:
		if !strings.HasPrefix(g.Value, "spiffe://") {
			return "must start with spiffe:// (a SPIFFE ID such as spiffe://fedmesh.local/ns/demo/sa/client, or a glob of one)"
		}
		return ""
	}
	if _, _, ok := SplitSpiffeID(s); !ok {
		return "must be a SPIFFE ID spiffe://TRUST-DOMAIN/PATH such as spiffe://fedmesh.local/ns/demo/sa/client"
	}
	return ""
}

// SplitSpiffeID splits spiffe://TD/PATH into the trust domain and the
// path; ok is false when id is not a well-formed SPIFFE ID.
func SplitSpiffeID(id string) (td, path string, ok bool) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", "", false
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	td, path = rest[:i], rest[i:]
	if !trustDomainRE.MatchString(td) || !spiffePathRE.MatchString(path) {
		return "", "", false
	}
	for _, seg := range strings.Split(path[1:], "/") {
		if seg == "." || seg == ".." {
			return "", "", false
		}
	}
	return td, path, true
}

// nameGlob checks a namespace or cluster glob: DNS-1123 labels.
func nameGlob(s string) string {
	g, why := parseGlob(s)
	if why != "" {
		return why
	}
	if !nameCharsRE.MatchString(g.Value) {
		return "may hold only lower-case letters, digits and '-' (a DNS-1123 label), " + globForms
	}
	if g.Kind == GlobExact {
		return catalog.IsDNS1123Label(s)
	}
	return ""
}

func pathGlob(s string) string {
	g, why := parseGlob(s)
	if why != "" {
		return why
	}
	if strings.ContainsAny(s, "?#") {
		return "paths match without the query and fragment: remove '?' and '#'"
	}
	if (g.Kind == GlobExact || g.Kind == GlobPrefix) && !strings.HasPrefix(s, "/") {
		return `must start with "/"`
	}
	return ""
}

func method(s string) string {
	if strings.Contains(s, "*") {
		return "methods are exact (GET, POST ...): no globs"
	}
	if !methodRE.MatchString(s) {
		return "must be an HTTP method such as GET"
	}
	return ""
}

func headerGlob(s string) string {
	_, why := parseGlob(s)
	return why
}

func ports(fe *fieldErrors, path string, ps []Port) {
	if len(ps) > MaxValues {
		fe.add(path, "", fmt.Sprintf("%d values, at most %d", len(ps), MaxValues))
		return
	}
	for i, p := range ps {
		if p < 1 || p > 65535 {
			fe.add(fmt.Sprintf("%s[%d]", path, i), fmt.Sprint(p), "out of range 1-65535")
		}
	}
}

type fieldErrors []*catalog.FieldError

func (fe *fieldErrors) add(field, value, reason string) {
	*fe = append(*fe, &catalog.FieldError{Field: field, Value: value, Reason: reason})
}

func (fe fieldErrors) err(object string) error {
	if len(fe) == 0 {
		return nil
	}
	return &catalog.ValidationError{Object: object, Fields: fe}
}
