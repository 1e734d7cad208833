package membership

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fedmesh/fedmesh/topology"
)

// Tag keys carried by every control plane's serf member. Keys are short
// because all tags share memberlist's 512-byte metadata limit.
const (
	TagCluster         = "cluster"
	TagRegion          = "region"
	TagZone            = "zone"
	TagGateway         = "gw"
	TagCatalog         = "catalog"
	TagProtocolVersion = "pv"
	TagInstanceID      = "iid"
	// TagReplica names one of several control plane replicas of a
	// cluster; absent for a cluster that runs one.
	TagReplica = "rep"
)

// Federation protocol versions this build speaks. A member announcing a
// version outside [ProtocolVersionMin, ProtocolVersionMax] is ignored.
const (
	ProtocolVersionMin = 1
	ProtocolVersionMax = 1
	// ProtocolVersion is the version this build announces.
	ProtocolVersion = 1
)

// ErrBadTags is wrapped by every tag decoding error.
var ErrBadTags = errors.New("bad member tags")

// Reasons a member is ignored; they are the values of the reason label of
// fedmesh_federation_members_ignored_total.
const (
	ReasonMissingTag          = "missing_tag"
	ReasonBadClusterName      = "bad_cluster_name"
	ReasonBadLocality         = "bad_locality"
	ReasonBadGatewayAddr      = "bad_gateway_addr"
	ReasonBadCatalogAddr      = "bad_catalog_addr"
	ReasonBadProtocolVersion  = "bad_protocol_version"
	ReasonUnsupportedProtocol = "unsupported_protocol_version"
	ReasonBadInstanceID       = "bad_instance_id"
	ReasonNameMismatch        = "name_mismatch"
	ReasonBadReplica          = "bad_replica"
)

// TagError says which tag of a member is wrong and why. Reason is one of
// the Reason constants.
type TagError struct {
	Reason string
	Tag    string
	Detail string
}

func (e *TagError) Error() string {
	return fmt.Sprintf("%s: tag %q: %s", ErrBadTags, e.Tag, e.Detail)
}

func (e *TagError) Unwrap() error { return ErrBadTags }

// MemberInfo is what a control plane announces about itself in its tags.
type MemberInfo struct {
	// Cluster is the cluster name, also the serf member name.
	Cluster string
	// Locality is the cluster's region and zone; Locality.Cluster equals
	// Cluster.
	Locality topology.Locality
	// GatewayAddr is the east-west gateway, host:port.
	GatewayAddr string
	// CatalogAddr is the etcd client URL peers replicate exports from.
	CatalogAddr string
	// ProtocolVersion is the federation protocol version the member speaks.
	ProtocolVersion int
	// InstanceID is random per process start; it tells a restarted
	// control plane from an impostor claiming the same cluster name.
	InstanceID string
	// CIDRs are the address ranges the cluster's workloads send from
	// (TagCIDRs); nil when it declares none or its tag is malformed.
	CIDRs []netip.Prefix
	// Replica names the control plane among the replicas of its cluster
	// (TagReplica); empty for a cluster that runs one.
	Replica string
}

// Encode returns the serf tags announcing info. It does not validate;
// DecodeTags(info.Encode()) does.
func (info MemberInfo) Encode() map[string]string {
	tags := map[string]string{
		TagCluster:         info.Cluster,
		TagRegion:          info.Locality.Region,
		TagZone:            info.Locality.Zone,
		TagGateway:         info.GatewayAddr,
		TagCatalog:         info.CatalogAddr,
		TagProtocolVersion: strconv.Itoa(info.ProtocolVersion),
		TagInstanceID:      info.InstanceID,
	}
	if len(info.CIDRs) > 0 {
		tags[TagCIDRs] = encodeCIDRs(info.CIDRs)
	}
	if info.Replica != "" {
		tags[TagReplica] = info.Replica
	}
	return tags
}

// DecodeTags reads and validates the tags of a serf member. Tags it does
// not know are ignored, so newer members can add some, and so is a
// malformed optional cidrs tag (see DecodeCIDRs). The error is a
// *TagError naming the tag and the reason.
func DecodeTags(tags map[string]string) (MemberInfo, error) {
	var info MemberInfo
	get := func(key string, required bool) (string, error) {
		v, ok := tags[key]
		if !ok || (required && v == "") {
			return "", &TagError{Reason: ReasonMissingTag, Tag: key, Detail: "missing"}
		}
		return v, nil
	}
	pv, err := get(TagProtocolVersion, true)
	if err != nil {
		return info, err
	}
	n, err := strconv.Atoi(pv)
	if err != nil || len(pv) > 4 {
		return info, &TagError{Reason: ReasonBadProtocolVersion, Tag: TagProtocolVersion, Detail: fmt.Sprintf("%q is not a number", pv)}
	}
	if n < ProtocolVersionMin || n > ProtocolVersionMax {
		return info, &TagError{Reason: ReasonUnsupportedProtocol, Tag: TagProtocolVersion,
			Detail: fmt.Sprintf("version %d is not supported (this build speaks %d to %d)", n, ProtocolVersionMin, ProtocolVersionMax)}
	}
	info.ProtocolVersion = n

	if info.Cluster, err = get(TagCluster, true); err != nil {
		return info, err
	}
	if !IsClusterName(info.Cluster) {
		return info, &TagError{Reason: ReasonBadClusterName, Tag: TagCluster, Detail: fmt.Sprintf("%q is not a DNS-1123 label", info.Cluster)}
	}
	region, err := get(TagRegion, true)
	if err != nil {
		return info, err
	}
	zone, err := get(TagZone, false)
	if err != nil {
		return info, err
	}
	if !isLabel(region) {
		return info, &TagError{Reason: ReasonBadLocality, Tag: TagRegion, Detail: fmt.Sprintf("%q is not a DNS-1123 label", region)}
	}
	if zone != "" && !isLabel(zone) {
		return info, &TagError{Reason: ReasonBadLocality, Tag: TagZone, Detail: fmt.Sprintf("%q is not a DNS-1123 label", zone)}
	}
	info.Locality = topology.Locality{Region: region, Zone: zone, Cluster: info.Cluster}

	if info.GatewayAddr, err = get(TagGateway, true); err != nil {
		return info, err
	}
	if err := checkHostPort(info.GatewayAddr); err != nil {
		return info, &TagError{Reason: ReasonBadGatewayAddr, Tag: TagGateway, Detail: err.Error()}
	}
	if info.CatalogAddr, err = get(TagCatalog, true); err != nil {
		return info, err
	}
	if err := checkCatalogURL(info.CatalogAddr); err != nil {
		return info, &TagError{Reason: ReasonBadCatalogAddr, Tag: TagCatalog, Detail: err.Error()}
	}
	if info.InstanceID, err = get(TagInstanceID, true); err != nil {
		return info, err
	}
	if len(info.InstanceID) > 64 || !isLabel(info.InstanceID) {
		return info, &TagError{Reason: ReasonBadInstanceID, Tag: TagInstanceID, Detail: fmt.Sprintf("%q is not a short lower-case id", info.InstanceID)}
	}
	if rep, ok := tags[TagReplica]; ok {
		if !isLabel(rep) {
			return info, &TagError{Reason: ReasonBadReplica, Tag: TagReplica, Detail: fmt.Sprintf("%q is not a DNS-1123 label", rep)}
		}
		info.Replica = rep
	}
	if cidrs, err := DecodeCIDRs(tags); err == nil {
		info.CIDRs = cidrs
	}
	return info, nil
}

// MemberName is the serf member name of a control plane: the cluster
// name alone, or CLUSTER.REPLICA for one of several replicas. The dot
// cannot occur in either part, so the name tells both apart.
func MemberName(cluster, replica string) string {
	if replica == "" {
		return cluster
	}
	return cluster + "." + replica
}

// SplitMemberName is the inverse of MemberName: the cluster and replica
// a member name stands for, and whether it is a valid member name.
func SplitMemberName(name string) (cluster, replica string, ok bool) {
	cluster, replica, dotted := strings.Cut(name, ".")
	if !isLabel(cluster) || (dotted && !isLabel(replica)) {
		return "", "", false
	}
	return cluster, replica, true
}

// IsClusterName reports whether s is a valid cluster name: a DNS-1123
// label (lower-case letters, digits and '-', 1 to 63 characters, starting
// and ending with a letter or digit).
func IsClusterName(s string) bool { return isLabel(s) }

// isLabel reports whether s is a DNS-1123 label (apimachinery's
// validation.IsDNS1123Label).
func isLabel(s string) bool { return len(validation.IsDNS1123Label(s)) == 0 }

// checkHostPort accepts host:port with an IP address or a DNS name and a
// port from 1 to 65535.
func checkHostPort(s string) error {
	if len(s) > 300 {
		return fmt.Errorf("%d bytes is too long for an address", len(s))
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !isHostName(host) {
		return fmt.Errorf("host %q is neither an IP address nor a DNS name", host)
	}
	return nil
}

func isHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if !isLabel(lowerASCII(s[start:i])) {
				return false
			}
			start = i + 1
		}
	}
	return true
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// checkCatalogURL accepts an http or https URL with host:port and nothing
// else (no user, path, query or fragment).
func checkCatalogURL(s string) error {
	if len(s) > 300 {
		return fmt.Errorf("%d bytes is too long for a URL", len(s))
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q: scheme must be https or http", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%q: want SCHEME://HOST:PORT only", s)
	}
	if err := checkHostPort(u.Host); err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	return nil
}
