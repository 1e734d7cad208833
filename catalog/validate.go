package catalog

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FieldError says which field of an object is wrong and why.
type FieldError struct {
	// Field is a path such as ports[1].name.
	Field string
	// Value is the offending value, rendered for humans.
	Value string
	// Reason says what is wrong.
	Reason string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Reason
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid")

// ValidationError is a list of field errors about one object.
type ValidationError struct {
	// Object names the object, such as "service demo/echo".
	Object string
	Fields []*FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return e.Object + ": " + strings.Join(msgs, "; ")
}

// Unwrap lets errors.Is(err, ErrInvalid) match.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

type fieldErrors []*FieldError

func (fe *fieldErrors) add(field, value, reason string) {
	*fe = append(*fe, &FieldError{Field: field, Value: value, Reason: reason})
}

func (fe fieldErrors) err(object string) error {
	if len(fe) == 0 {
		return nil
	}
	return &ValidationError{Object: object, Fields: fe}
}

// IsDNS1123Label reports why s is not a DNS-1123 label (lower case
// alphanumerics and '-', starting and ending alphanumeric, at most 63
// characters), or "" when it is one. The check is apimachinery's
// validation.IsDNS1123Label; the reason is worded for field errors.
func IsDNS1123Label(s string) string {
	switch {
	case len(validation.IsDNS1123Label(s)) == 0:
		return ""
	case s == "":
		return "must not be empty"
	case len(s) > validation.DNS1123LabelMaxLength:
		return fmt.Sprintf("must be no more than %d characters", validation.DNS1123LabelMaxLength)
	}
	return "must be a DNS-1123 label: lower case alphanumeric characters or '-', starting and ending with an alphanumeric character"
}

// IsServiceName reports why s is not a valid service name (a DNS-1035
// label: a DNS-1123 label that starts with a letter), or "".
func IsServiceName(s string) string {
	if why := IsDNS1123Label(s); why != "" {
		return why
	}
	if s[0] < 'a' || s[0] > 'z' {
		return "must start with a lower case letter (DNS-1035 label)"
	}
	return ""
}

// validateClusterIPs checks ClusterIPs: IP literals in canonical form,
// one per family, none for a Headless service.
func (s *Service) validateClusterIPs(fe *fieldErrors, prefix string) {
	if len(s.ClusterIPs) > 0 && s.Type == Headless {
		fe.add(prefix+"clusterIPs", strings.Join(s.ClusterIPs, ","), "must be empty for a Headless service")
		return
	}
	if len(s.ClusterIPs) > MaxClusterIPs {
		fe.add(prefix+"clusterIPs", strings.Join(s.ClusterIPs, ","), fmt.Sprintf("must have at most %d addresses", MaxClusterIPs))
		return
	}
	families := map[bool]int{}
	for i, a := range s.ClusterIPs {
		f := fmt.Sprintf("%sclusterIPs[%d]", prefix, i)
		ip, err := netip.ParseAddr(a)
		switch {
		case err != nil || ip.Zone() != "" || ip.Is4In6():
			fe.add(f, a, "must be an IPv4 or IPv6 address")
			continue
		case ip.String() != a:
			fe.add(f, a, "must be in canonical form ("+ip.String()+")")
			continue
		}
		if j, dup := families[ip.Is4()]; dup {
			fe.add(f, a, fmt.Sprintf("must be of another IP family than clusterIPs[%d]", j))
			continue
		}
		families[ip.Is4()] = i
	}
}

// Validate checks the service and returns a *ValidationError naming every
// bad field.
func (s *Service) Validate() error {
	var fe fieldErrors
	s.validateInto(&fe, "")
	return fe.err("service " + s.Key().String())
}

func (s *Service) validateInto(fe *fieldErrors, prefix string) {
	if why := IsDNS1123Label(s.Namespace); why != "" {
		fe.add(prefix+"namespace", s.Namespace, why)
	}
	if why := IsServiceName(s.Name); why != "" {
		fe.add(prefix+"name", s.Name, why)
	}
	if s.Cluster == "" {
		fe.add(prefix+"cluster", "", "must not be empty")
	} else if why := IsDNS1123Label(s.Cluster); why != "" {
		fe.add(prefix+"cluster", s.Cluster, why)
	}
	switch s.Type {
	case ClusterSetIP, Headless:
	default:
		fe.add(prefix+"type", string(s.Type), "must be ClusterSetIP or Headless")
	}
	if len(s.Ports) == 0 {
		fe.add(prefix+"ports", "", "must have at least one port")
	}
	s.validateClusterIPs(fe, prefix)
	names := make(map[string]int, len(s.Ports))
	type numProto struct {
		n int32
		p Protocol
	}
	numbers := make(map[numProto]int, len(s.Ports))
	for i, p := range s.Ports {
		f := fmt.Sprintf("%sports[%d]", prefix, i)
		if p.Name == "" {
			if len(s.Ports) > 1 {
				fe.add(f+".name", "", "must be set when a service has more than one port")
			}
		} else if why := IsDNS1123Label(p.Name); why != "" {
			fe.add(f+".name", p.Name, why)
		}
		if j, dup := names[p.Name]; dup && p.Name != "" {
			fe.add(f+".name", p.Name, fmt.Sprintf("duplicate port name (also ports[%d])", j))
		} else {
			names[p.Name] = i
		}
		if p.Port < 1 || p.Port > 65535 {
			fe.add(f+".port", fmt.Sprint(p.Port), "must be between 1 and 65535")
		}
		switch p.Protocol {
		case "", TCP, UDP, SCTP:
		default:
			fe.add(f+".protocol", string(p.Protocol), "must be TCP, UDP or SCTP")
		}
		switch p.AppProtocol {
		case "", AppHTTP, AppHTTP2, AppGRPC, AppTCP:
		default:
			fe.add(f+".appProtocol", p.AppProtocol, "must be one of http, http2, grpc, tcp")
		}
		proto := p.Protocol
		if proto == "" {
			proto = TCP
		}
		k := numProto{p.Port, proto}
		if j, dup := numbers[k]; dup {
			fe.add(f+".port", fmt.Sprint(p.Port), fmt.Sprintf("duplicate port number and protocol (also ports[%d])", j))
		} else {
			numbers[k] = i
		}
	}
}

// Validate checks the endpoint on its own (without its service).
func (e *Endpoint) Validate() error {
	var fe fieldErrors
	e.validateInto(&fe, "")
	return fe.err("endpoint " + e.Address)
}

func (e *Endpoint) validateInto(fe *fieldErrors, prefix string) {
	if e.Address == "" {
		fe.add(prefix+"address", "", "must not be empty")
	} else if _, err := netip.ParseAddr(e.Address); err != nil {
		fe.add(prefix+"address", e.Address, "must be an IPv4 or IPv6 address")
	}
	if e.Port < 1 || e.Port > 65535 {
		fe.add(prefix+"port", fmt.Sprint(e.Port), "must be between 1 and 65535")
	}
	if e.Locality.Cluster == "" {
		fe.add(prefix+"locality.cluster", "", "must not be empty")
	}
	if e.ServiceAccount != "" {
		if why := IsDNS1123Subdomain(e.ServiceAccount); why != "" {
			fe.add(prefix+"serviceAccount", e.ServiceAccount, why)
		}
	}
	validateLabelsInto(fe, prefix+"labels", e.Labels)
}

// IsDNS1123Subdomain reports why s is not a DNS-1123 subdomain (as used for
// Kubernetes object names such as service accounts), or "". The check is
// apimachinery's validation.IsDNS1123Subdomain; the reason is worded for
// field errors.
func IsDNS1123Subdomain(s string) string {
	switch {
	case len(validation.IsDNS1123Subdomain(s)) == 0:
		return ""
	case s == "":
		return "must not be empty"
	case len(s) > validation.DNS1123SubdomainMaxLength:
		return fmt.Sprintf("must be no more than %d characters", validation.DNS1123SubdomainMaxLength)
	}
	return "must be a DNS-1123 subdomain: lower case alphanumeric characters, '-' or '.', each dot-separated part starting and ending with an alphanumeric character"
}

// Validate checks the service, every endpoint, and that each endpoint
// serves a port the service has and belongs to the exporting cluster.
func (e *Export) Validate() error {
	var fe fieldErrors
	e.Service.validateInto(&fe, "")
	for i := range e.Endpoints {
		ep := &e.Endpoints[i]
		f := fmt.Sprintf("endpoints[%d].", i)
		ep.validateInto(&fe, f)
		if _, ok := e.Service.PortByName(ep.PortName); !ok {
			fe.add(f+"portName", ep.PortName, "names no port of the service")
		}
		if ep.Locality.Cluster != "" && ep.Locality.Cluster != e.Service.Cluster {
			fe.add(f+"locality.cluster", ep.Locality.Cluster, "must be the exporting cluster "+e.Service.Cluster)
		}
	}
	validateQuotasInto(&fe, e.Service.Namespace, e.Quotas)
	return fe.err("service " + e.Service.Key().String())
}
