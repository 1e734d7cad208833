package inject

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// capture reads the pod's capture annotations into the rules its init
// script installs, and the sidecar's --inbound-plaintext value: "all"
// (PERMISSIVE), "none" (STRICT), or the ports that take plaintext.
func (in *Injector) capture(meta *metav1.ObjectMeta) (Capture, string, error) {
	c := in.cfg
	a := meta.Annotations
	bad := func(name string, err error) error { return fmt.Errorf("%w: %s: %w", ErrBadAnnotation, name, err) }
	excludeIn, err := ParsePorts(a[AnnotationExcludeInboundPorts])
	if err != nil {
		return Capture{}, "", bad(AnnotationExcludeInboundPorts, err)
	}
	for _, p := range excludeIn {
		if p == c.OutboundPort || p == c.AdminPort {
			return Capture{}, "", bad(AnnotationExcludeInboundPorts,
				fmt.Errorf("port %d is the sidecar's outbound or admin port, which only the pod itself may reach", p))
		}
	}
	excludeOut, err := ParsePorts(a[AnnotationExcludeOutboundPorts])
	if err != nil {
		return Capture{}, "", bad(AnnotationExcludeOutboundPorts, err)
	}
	cidrs, err := ParseCIDRs(a[AnnotationExcludeOutboundCIDRs])
	if err != nil {
		return Capture{}, "", bad(AnnotationExcludeOutboundCIDRs, err)
	}
	plainPorts, err := ParsePorts(a[AnnotationInboundPlaintextPorts])
	if err != nil {
		return Capture{}, "", bad(AnnotationInboundPlaintextPorts, err)
	}
	for _, p := range plainPorts {
		if p == c.OutboundPort || p == c.AdminPort || p == c.InboundPort {
			return Capture{}, "", bad(AnnotationInboundPlaintextPorts, fmt.Errorf("port %d is one of the sidecar's own", p))
		}
	}
	mode, set := a[AnnotationInboundMode]
	switch {
	case !set:
		mode = ModePermissive
	case mode != ModeStrict && mode != ModePermissive:
		return Capture{}, "", bad(AnnotationInboundMode, fmt.Errorf("%q is not %s or %s", mode, ModeStrict, ModePermissive))
	}
	if slices.Contains(c.StrictNamespaces, meta.Namespace) {
		if (set && mode == ModePermissive) || len(plainPorts) > 0 {
			return Capture{}, "", bad(AnnotationInboundMode,
				fmt.Errorf("namespace %s is STRICT (mTLS only): a pod there cannot take plaintext", meta.Namespace))
		}
		mode = ModeStrict
	}
	var dnsPort int32
	switch v := a[AnnotationCaptureDNS]; v {
	case "", "true":
		dnsPort = c.DNSPort
	case "false":
	default:
		return Capture{}, "", bad(AnnotationCaptureDNS, fmt.Errorf("%q is not true or false", v))
	}
	plaintext := "all"
	if mode == ModeStrict {
		plaintext = "none"
		if len(plainPorts) > 0 {
			plaintext = strings.ReplaceAll(joinPorts(plainPorts), " ", "")
		}
	}
	return Capture{
		ProxyUID:             c.ProxyUID,
		OutboundPort:         c.OutboundPort,
		InboundPort:          c.InboundPort,
		ReadyPort:            c.ReadyPort,
		ExcludeInboundPorts:  excludeIn,
		ExcludeOutboundPorts: excludeOut,
		ExcludeOutboundCIDRs: cidrs,
		DNSPort:              dnsPort,
	}, plaintext, nil
}

// ParseCIDRs reads a comma-separated list of address prefixes (IPv4 or
// IPv6; a bare address is its own /32 or /128), masked, sorted and
// deduplicated.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not an address prefix (CIDR) or address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return nil, fmt.Errorf("%q: write an IPv4-mapped prefix as IPv4, without a zone", f)
		}
		p = p.Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out, nil
}

// containerPort resolves a probe's port: a number, or the name of one of
// the container's ports.
func containerPort(c *corev1.Container, num int32, name string) (int32, bool) {
	if name == "" {
		return num, num > 0 && num <= 65535
	}
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}
