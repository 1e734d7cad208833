package inject

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/internal/portset"
)

// AnnotationOpaquePorts lists the ports where the pod's sidecar detects
// no protocol, "3306,5000-5010" or "none", in place of the injector's
// (Config.OpaquePorts), as Linkerd's config.linkerd.io/opaque-ports
// does: connections to them pass through (outbound) or are relayed as
// plaintext where the pod takes it (inbound) without waiting for their
// first bytes, which a server-first protocol's client never sends first.
const AnnotationOpaquePorts = "fedmesh.io/opaque-ports"

// opaquePorts is the pod's set of opaque ports: its annotation's, else
// the injector's.
func (in *Injector) opaquePorts(meta *metav1.ObjectMeta) (portset.Set, error) {
	v, ok := meta.Annotations[AnnotationOpaquePorts]
	if !ok {
		return in.opaque, nil
	}
	s, err := portset.Parse(v)
	if err != nil {
		return portset.Set{}, fmt.Errorf("%w: %s: %w", ErrBadAnnotation, AnnotationOpaquePorts, err)
	}
	return s, nil
}
