// Package naming holds how fedmesh names things on the wire, in one place:
// the TLS server name (SNI) that routes a connection through an east-west
// gateway, the xDS resource names of clusters, listeners and secrets, and the
// node metadata keys a sidecar or gateway announces. The control plane, the
// sidecar and the gateway all build and parse names only through here.
//
// SNI format (docs/xds.md has the full wire conventions):
//
//	<port>.<name>.<namespace>.svc.clusterset.local
//
// for example 8080.echo.demo.svc.clusterset.local: service echo in namespace
// demo, service port 8080. Every label is a DNS-1123 label, so the name is a
// valid host name that crypto/tls sends as is.
package naming

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ClusterSetDomain is the DNS suffix of multi-cluster services (MCS API).
const ClusterSetDomain = "svc.clusterset.local"

// ErrBadSNI is wrapped by every SNI parsing error.
var ErrBadSNI = errors.New("bad SNI")

// MaxSNILength is the longest server name fedmesh builds or accepts.
const MaxSNILength = 253

// ProbeALPN is the application protocol a control plane's gateway probe
// offers first (beside h2 and http/1.1, which the sidecar picks): the
// gateway counts such a connection as a probe, not as traffic.
const ProbeALPN = "fedmesh-probe"

// GatewayProbeSNI is the server name an east-west gateway answers itself:
// a peer control plane's probe of the gateway alone, for a cluster that
// exports nothing to probe it through. The gateway terminates that TLS
// with its own SVID and asks the prober for a control plane SVID. The
// name is under .invalid (RFC 2606), so it never names a real host, and
// it is not a service name (ParseSNI refuses it).
const GatewayProbeSNI = "gateway.probe.fedmesh.invalid"

// ServicePort names one port of one multi-cluster service.
type ServicePort struct {
	Namespace string
	Name      string
	Port      int32
}

// Host returns NAME.NAMESPACE.svc.clusterset.local.
func (sp ServicePort) Host() string {
	return sp.Name + "." + sp.Namespace + "." + ClusterSetDomain
}

// String renders namespace/name:port.
func (sp ServicePort) String() string {
	return sp.Namespace + "/" + sp.Name + ":" + strconv.Itoa(int(sp.Port))
}

// SNI returns the server name a sidecar sends to reach this service port
// through a remote cluster's gateway.
func (sp ServicePort) SNI() string {
	return strconv.Itoa(int(sp.Port)) + "." + sp.Host()
}

// ParseSNI reads a server name built by SNI. It rejects anything else with
// an error wrapping ErrBadSNI that says what is wrong. Upper case letters are
// folded, as TLS server names are case-insensitive.
func ParseSNI(sni string) (ServicePort, error) {
	if sni == "" {
		return ServicePort{}, fmt.Errorf("%w: empty", ErrBadSNI)
	}
	if len(sni) > MaxSNILength {
		return ServicePort{}, fmt.Errorf("%w: %d bytes, longer than %d", ErrBadSNI, len(sni), MaxSNILength)
	}
	s := strings.ToLower(sni)
	rest, ok := strings.CutSuffix(s, "."+ClusterSetDomain)
	if !ok {
		return ServicePort{}, fmt.Errorf("%w: %q does not end in .%s", ErrBadSNI, sni, ClusterSetDomain)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return ServicePort{}, fmt.Errorf("%w: %q is not PORT.NAME.NAMESPACE.%s", ErrBadSNI, sni, ClusterSetDomain)
	}
	port, err := strconv.ParseUint(parts[0], 10, 16)
	if err != nil || port == 0 || parts[0][0] == '0' {
		return ServicePort{}, fmt.Errorf("%w: port %q is not a number from 1 to 65535", ErrBadSNI, parts[0])
	}
	for _, label := range parts[1:] {
		if len(validation.IsDNS1123Label(label)) != 0 {
			return ServicePort{}, fmt.Errorf("%w: %q is not a DNS-1123 label", ErrBadSNI, label)
		}
	}
	return ServicePort{Namespace: parts[2], Name: parts[1], Port: int32(port)}, nil
}

// xDS resource names.
const (
	// SecretWorkload is the SDS name of a node's own certificate and key.
	SecretWorkload = "default"
	// SecretRootCA is the SDS name of the federation's trust bundle.
	SecretRootCA = "ROOTCA"
	// GatewayListener is the name of a gateway's one listener, which
	// routes by SNI.
	GatewayListener = "gateway"
)

// OutboundCluster is the CDS/EDS name of a service port as seen by clients:
// outbound|PORT||NAME.NAMESPACE.svc.clusterset.local.
func (sp ServicePort) OutboundCluster() string {
	return "outbound|" + strconv.Itoa(int(sp.Port)) + "||" + sp.Host()
}

// ParseOutboundCluster reads a name built by OutboundCluster.
func ParseOutboundCluster(name string) (ServicePort, error) {
	rest, ok := strings.CutPrefix(name, "outbound|")
	if !ok {
		return ServicePort{}, fmt.Errorf("cluster name %q does not start with outbound|", name)
	}
	portStr, host, ok := strings.Cut(rest, "||")
	if !ok {
		return ServicePort{}, fmt.Errorf("cluster name %q is not outbound|PORT||HOST", name)
	}
	return ParseSNI(portStr + "." + host)
}

// InboundCluster is the name of the cluster a sidecar or gateway uses to
// reach local endpoints of a service port: inbound|PORT||HOST.
func (sp ServicePort) InboundCluster() string {
	return "inbound|" + strconv.Itoa(int(sp.Port)) + "||" + sp.Host()
}

// Node metadata keys (xDS Node.metadata) that sidecars and gateways send.
const (
	MetaCluster        = "fedmesh.cluster"
	MetaNamespace      = "fedmesh.namespace"
	MetaServiceAccount = "fedmesh.service_account"
	MetaRole           = "fedmesh.role"
	MetaWorkload       = "fedmesh.workload"
	// MetaToken carries a local-mode workload bootstrap token.
	MetaToken = "fedmesh.token"
	// MetaAppPorts tells where the app listens, per service port:
	// "PORTNAME=APPPORT[,PORTNAME=APPPORT...]" (a key may be a service
	// port number); unlisted ports go to the same number.
	MetaAppPorts = "fedmesh.app_ports"
	// MetaLabels are the workload's labels, "KEY=VALUE[,KEY=VALUE...]"
	// (FormatLabels), which a ResiliencePolicy's failoverPriority
	// compares with its endpoints' labels.
	MetaLabels = "fedmesh.labels"
)

// MaxLabels bounds the labels a node announces in MetaLabels (as
// catalog.MaxEndpointLabels bounds an endpoint's).
const MaxLabels = 64

// ParseLabels reads the MetaLabels form "KEY=VALUE[,KEY=VALUE...]":
// every key a Kubernetes label key, every value a label value, no key
// twice, at most MaxLabels. An empty value is no label (it is left out,
// as endpoints leave it out); "" is no labels (nil).
func ParseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	items := strings.Split(s, ",")
	if len(items) > MaxLabels {
		return nil, fmt.Errorf("%d labels, more than %d", len(items), MaxLabels)
	}
	var out map[string]string
	seen := make(map[string]bool, len(items))
	for i, item := range items {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("label %d %q is not KEY=VALUE", i, item)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("label %d: key %q: %s", i, k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("label %d: value %q of key %q: %s", i, v, k, strings.Join(errs, "; "))
		}
		if seen[k] {
			return nil, fmt.Errorf("label %d: key %q given twice", i, k)
		}
		seen[k] = true
		if v == "" {
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[k] = v
	}
	return out, nil
}

// FormatLabels renders labels in the form of MetaLabels, keys sorted;
// nil or empty is "". Kubernetes label keys and values never hold ','
// or '=', so the form is unambiguous for them.
func FormatLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + labels[k])
	}
	return b.String()
}

// Node roles.
const (
	RoleSidecar = "sidecar"
	RoleGateway = "gateway"
	// RoleProxyless is a gRPC client using xDS directly (grpc-go's xds
	// resolver), with no sidecar.
	RoleProxyless = "proxyless"
)

// Endpoint metadata (filter_metadata["fedmesh"]) on every LbEndpoint.
const (
	MetadataNamespace = "fedmesh"
	// EndpointCluster is the cluster the endpoint belongs to.
	EndpointCluster = "cluster"
	// EndpointSNI is set on remote endpoints (a gateway address): the
	// server name to send.
	EndpointSNI = "sni"
	// EndpointIdentity is the SPIFFE ID the endpoint must present.
	EndpointIdentity = "identity"
)

// SubsetLocal is the subset of a service port's cluster that holds only
// the local cluster's endpoints: what an HTTPRoute backendRef of kind
// Service (this cluster) sends to, where a ServiceImport backendRef
// (the clusterset) sends to the whole service.
const SubsetLocal = "local"

// LocalCluster is the CDS/EDS name of the local-only subset of a service
// port: outbound|PORT|local|NAME.NAMESPACE.svc.clusterset.local.
func (sp ServicePort) LocalCluster() string {
	return "outbound|" + strconv.Itoa(int(sp.Port)) + "|" + SubsetLocal + "|" + sp.Host()
}

// ParseCluster reads a name built by OutboundCluster or LocalCluster and
// returns its service port and subset ("" or SubsetLocal).
func ParseCluster(name string) (ServicePort, string, error) {
	rest, ok := strings.CutPrefix(name, "outbound|")
	if !ok {
		return ServicePort{}, "", fmt.Errorf("cluster name %q does not start with outbound|", name)
	}
	portStr, rest, ok := strings.Cut(rest, "|")
	if !ok {
		return ServicePort{}, "", fmt.Errorf("cluster name %q is not outbound|PORT|SUBSET|HOST", name)
	}
	subset, host, ok := strings.Cut(rest, "|")
	if !ok || (subset != "" && subset != SubsetLocal) {
		return ServicePort{}, "", fmt.Errorf("cluster name %q is not outbound|PORT|SUBSET|HOST with subset empty or %q", name, SubsetLocal)
	}
	sp, err := ParseSNI(portStr + "." + host)
	return sp, subset, err
}
