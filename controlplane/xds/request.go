package xds

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

const (
	// maxResourceNames bounds the names of one discovery request: more
	// than a node could ever be served (one cluster per service port of
	// the federation), far less than the gRPC message cap allows.
	maxResourceNames = 16384
	// maxResourceName bounds one resource name; fedmesh's longest names
	// are outbound|PORT||HOST with a DNS name of at most 253 bytes.
	maxResourceName = 1024
)

// checkRequest checks what a discovery request asks for before anything
// else looks at it: a type fedmesh serves, and a bounded number of
// bounded, valid names. It returns the refusal's metric reason with the
// error. Pure; called for every request of every stream.
func checkRequest(typeURL string, names []string) (reason string, err error) {
	if typeIndex(typeURL) < 0 {
		if len(typeURL) > maxResourceName {
			typeURL = typeURL[:maxResourceName] + "…"
		}
		return "type_url", fmt.Errorf("type URL %q is not served; want one of %v", typeURL, typeURLs)
	}
	if len(names) > maxResourceNames {
		return "resource_names", fmt.Errorf("%d resource names in one request, more than %d", len(names), maxResourceNames)
	}
	for i, name := range names {
		switch {
		case len(name) > maxResourceName:
			return "resource_names", fmt.Errorf("resource name %d is %d bytes, longer than %d", i, len(name), maxResourceName)
		case !utf8.ValidString(name):
			return "resource_names", fmt.Errorf("resource name %d is not valid UTF-8", i)
		case strings.HasPrefix(name, "\x00"):
			return "resource_names", fmt.Errorf("resource name %d starts with a NUL byte", i)
		}
	}
	return "", nil
}

// checkDeltaRequest checks what checkRequest does not see of a delta
// request: the names it unsubscribes and those of the versions it
// announces (initial_resource_versions), bounded and valid alike.
func checkDeltaRequest(req *discoverygrpc.DeltaDiscoveryRequest) (reason string, err error) {
	if reason, err := checkRequest(req.GetTypeUrl(), req.GetResourceNamesUnsubscribe()); err != nil {
		return reason, fmt.Errorf("unsubscribe: %w", err)
	}
	if len(req.GetInitialResourceVersions()) > maxResourceNames {
		return "resource_names", fmt.Errorf("%d initial resource versions in one request, more than %d", len(req.GetInitialResourceVersions()), maxResourceNames)
	}
	names := slices.Sorted(maps.Keys(req.GetInitialResourceVersions()))
	if reason, err := checkRequest(req.GetTypeUrl(), names); err != nil {
		return reason, fmt.Errorf("initial resource versions: %w", err)
	}
	return "", nil
}
