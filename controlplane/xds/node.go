package xds

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/controlplane/plan"
	"github.com/fedmesh/fedmesh/internal/naming"
	"github.com/fedmesh/fedmesh/topology"
)

// ErrBadNode is wrapped by every error about a node's announced metadata.
var ErrBadNode = errors.New("bad node")

// DefaultServiceAccount is the service account of a node or endpoint that
// names none, as in Kubernetes.
const DefaultServiceAccount = plan.DefaultServiceAccount

// Node is what a proxy announces about itself in its xDS Node message,
// parsed and checked (docs/xds.md, section 1).
type Node struct {
	// ID is node.id, unique per proxy.
	ID string `json:"id"`
	// Role is naming.RoleSidecar, RoleGateway or RoleProxyless.
	Role string `json:"role"`
	// Cluster is the proxy's cluster (fedmesh.cluster).
	Cluster string `json:"cluster"`
	// Namespace and ServiceAccount are the identity the node claims.
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Workload selects the workload's own endpoints for the inbound side.
	Workload string `json:"workload,omitempty"`
	// Locality is node.locality; Cluster is always set (sub_zone or
	// fedmesh.cluster). Region and zone may be empty: the builder then
	// takes them from the cluster's locality in the view.
	Locality topology.Locality `json:"locality"`
	// AppPorts maps a service port name (or number, as a string) to the
	// port the app listens on.
	AppPorts map[string]int32 `json:"appPorts,omitempty"`
	// Labels are the workload's labels (fedmesh.labels), which a
	// ResiliencePolicy's failoverPriority compares with its endpoints'.
	Labels map[string]string `json:"labels,omitempty"`
	// Token is the local-mode bootstrap token; never logged or shown.
	Token string `json:"-"`
}

// maxMetaValue bounds every metadata string the control plane reads but
// the labels, which maxMetaLabels bounds: up to naming.MaxLabels of the
// longest key (a 253-byte prefix, '/', a 63-byte name) and value.
const (
	maxMetaValue  = 4096
	maxMetaLabels = naming.MaxLabels * (253 + 1 + 63 + 1 + 63 + 1)
)

// ParseNode reads and checks a node's announced metadata. It does not
// authenticate: the claims are compared with a proven identity later.
func ParseNode(n *corev3.Node) (Node, error) {
	if n == nil {
		return Node{}, fmt.Errorf("%w: no node in the request", ErrBadNode)
	}
	out := Node{ID: n.GetId()}
	if out.ID == "" {
		return Node{}, fmt.Errorf("%w: node.id is empty", ErrBadNode)
	}
	if len(out.ID) > maxMetaValue {
		return Node{}, fmt.Errorf("%w: node.id is %d bytes, longer than %d", ErrBadNode, len(out.ID), maxMetaValue)
	}
	fields := n.GetMetadata().GetFields()
	str := func(key string) (string, error) {
		limit := maxMetaValue
		if key == naming.MetaLabels {
			limit = maxMetaLabels
		}
		v, ok := fields[key]
		if !ok {
			return "", nil
		}
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return "", fmt.Errorf("%w: metadata %s must be a string", ErrBadNode, key)
		}
		if len(s.StringValue) > limit {
			return "", fmt.Errorf("%w: metadata %s is %d bytes, longer than %d", ErrBadNode, key, len(s.StringValue), limit)
		}
		return s.StringValue, nil
	}
	var err error
	get := func(key string, dst *string) {
		if err == nil {
			*dst, err = str(key)
		}
	}
	var appPorts, labels string
	get(naming.MetaRole, &out.Role)
	get(naming.MetaCluster, &out.Cluster)
	get(naming.MetaNamespace, &out.Namespace)
	get(naming.MetaServiceAccount, &out.ServiceAccount)
	get(naming.MetaWorkload, &out.Workload)
	get(naming.MetaToken, &out.Token)
	get(naming.MetaAppPorts, &appPorts)
	get(naming.MetaLabels, &labels)
	if err != nil {
		return Node{}, err
	}

	switch out.Role {
	case "":
		out.Role = naming.RoleSidecar
	case naming.RoleSidecar, naming.RoleGateway, naming.RoleProxyless:
	default:
		return Node{}, fmt.Errorf("%w: metadata %s %q must be %s, %s or %s", ErrBadNode, naming.MetaRole, out.Role,
			naming.RoleSidecar, naming.RoleGateway, naming.RoleProxyless)
	}
	if out.Cluster == "" {
		return Node{}, fmt.Errorf("%w: metadata %s is missing", ErrBadNode, naming.MetaCluster)
	}
	if why := catalog.IsDNS1123Label(out.Cluster); why != "" {
		return Node{}, fmt.Errorf("%w: metadata %s %q %s", ErrBadNode, naming.MetaCluster, out.Cluster, why)
	}
	if out.Role != naming.RoleGateway {
		if why := catalog.IsDNS1123Label(out.Namespace); why != "" {
			return Node{}, fmt.Errorf("%w: metadata %s %q %s", ErrBadNode, naming.MetaNamespace, out.Namespace, why)
		}
	} else if out.Namespace != "" {
		if why := catalog.IsDNS1123Label(out.Namespace); why != "" {
			return Node{}, fmt.Errorf("%w: metadata %s %q %s", ErrBadNode, naming.MetaNamespace, out.Namespace, why)
		}
	}
	if out.ServiceAccount == "" && out.Role != naming.RoleGateway {
		out.ServiceAccount = DefaultServiceAccount
	}
	if out.ServiceAccount != "" {
		if why := catalog.IsDNS1123Subdomain(out.ServiceAccount); why != "" {
			return Node{}, fmt.Errorf("%w: metadata %s %q %s", ErrBadNode, naming.MetaServiceAccount, out.ServiceAccount, why)
		}
	}
	loc := n.GetLocality()
	out.Locality = topology.Locality{Region: loc.GetRegion(), Zone: loc.GetZone(), Cluster: loc.GetSubZone()}
	switch out.Locality.Cluster {
	case "":
		out.Locality.Cluster = out.Cluster
	case out.Cluster:
	default:
		return Node{}, fmt.Errorf("%w: node.locality.sub_zone %q differs from metadata %s %q", ErrBadNode,
			out.Locality.Cluster, naming.MetaCluster, out.Cluster)
	}
	if out.AppPorts, err = ParseAppPorts(appPorts); err != nil {
		return Node{}, err
	}
	if out.Labels, err = naming.ParseLabels(labels); err != nil {
		return Node{}, fmt.Errorf("%w: metadata %s: %w", ErrBadNode, naming.MetaLabels, err)
	}
	return out, nil
}

// ParseAppPorts reads the fedmesh.app_ports form
// "PORTNAME=APPPORT[,PORTNAME=APPPORT...]"; a key may be a service port
// number. An empty string is an empty map.
func ParseAppPorts(s string) (map[string]int32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := make(map[string]int32)
	for i, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("%w: metadata %s item %d %q is not NAME=PORT", ErrBadNode, naming.MetaAppPorts, i, item)
		}
		if why := catalog.IsDNS1123Label(k); why != "" {
			return nil, fmt.Errorf("%w: metadata %s item %d: key %q %s", ErrBadNode, naming.MetaAppPorts, i, k, why)
		}
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%w: metadata %s item %d: port %q is not a number from 1 to 65535", ErrBadNode, naming.MetaAppPorts, i, v)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: metadata %s item %d: key %q given twice", ErrBadNode, naming.MetaAppPorts, i, k)
		}
		out[k] = int32(p)
	}
	return out, nil
}

// FormatAppPorts renders m in the form ParseAppPorts reads, keys sorted.
func FormatAppPorts(m map[string]int32) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + strconv.Itoa(int(m[k])))
	}
	return b.String()
}

// appPort is where the app serves service port p.
func (n *Node) appPort(p catalog.Port) int32 {
	if v, ok := n.AppPorts[p.Name]; ok && p.Name != "" {
		return v
	}
	if v, ok := n.AppPorts[strconv.Itoa(int(p.Port))]; ok {
		return v
	}
	return p.Port
}

// Key is the node's snapshot cache key: its identity claims and id, so a
// node reusing another's id never shares its snapshot.
func (n *Node) Key() string {
	return n.Role + "|" + n.Namespace + "|" + n.ServiceAccount + "|" + n.ID
}

// NodeMetadata builds node metadata in the form ParseNode reads; sidecars,
// gateways and tests use it to announce themselves.
func NodeMetadata(n Node) *structpb.Struct {
	f := map[string]*structpb.Value{
		naming.MetaCluster: structpb.NewStringValue(n.Cluster),
		naming.MetaRole:    structpb.NewStringValue(n.Role),
	}
	set := func(k, v string) {
		if v != "" {
			f[k] = structpb.NewStringValue(v)
		}
	}
	set(naming.MetaNamespace, n.Namespace)
	set(naming.MetaServiceAccount, n.ServiceAccount)
	set(naming.MetaWorkload, n.Workload)
	set(naming.MetaToken, n.Token)
	set(naming.MetaAppPorts, FormatAppPorts(n.AppPorts))
	set(naming.MetaLabels, naming.FormatLabels(n.Labels))
	return &structpb.Struct{Fields: f}
}
