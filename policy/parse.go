package policy

import (
	"bytes"
	"errors"
	"fmt"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// DefaultNamespace is the namespace of a policy that names none, as in
// Kubernetes.
const DefaultNamespace = "default"

// MaxDocumentSize is the largest document Parse reads.
const MaxDocumentSize = 1 << 20

// ErrParse is wrapped by every error of Parse that is not a validation
// error (those wrap catalog.ErrInvalid).
var ErrParse = errors.New("cannot parse AuthorizationPolicy")

// Parse decodes one YAML or JSON document holding an AuthorizationPolicy,
// strictly: an unknown, repeated or mistyped field is an error that names
// it. A missing namespace is DefaultNamespace. The policy is validated;
// a validation error is a *catalog.ValidationError.
func Parse(doc []byte) (*AuthorizationPolicy, error) {
	if len(doc) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrParse, len(doc), MaxDocumentSize)
	}
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParse, err)
	}
	j = bytes.TrimSpace(j)
	if len(j) == 0 || j[0] != '{' {
		return nil, fmt.Errorf("%w: the document is not an object", ErrParse)
	}
	p := new(AuthorizationPolicy)
	strict, err := sigsjson.UnmarshalStrict(j, p)
	if err == nil && len(strict) > 0 {
		err = errors.Join(strict...)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParse, err)
	}
	if p.APIVersion != APIVersion || p.Kind != Kind {
		return nil, fmt.Errorf("%w: apiVersion %q and kind %q: want %s and %s", ErrParse, p.APIVersion, p.Kind, APIVersion, Kind)
	}
	if p.Namespace == "" {
		p.Namespace = DefaultNamespace
	}
	if err := Validate(p); err != nil {
		return nil, err
	}
	return p, nil
}
