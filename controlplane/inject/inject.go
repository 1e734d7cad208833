package inject

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/catalog"
	"github.com/fedmesh/fedmesh/internal/naming"
)

// ErrConflict is wrapped when a pod already has a container or volume by
// one of the names injection uses, without being injected.
var ErrConflict = errors.New("pod already has a fedmesh name")

// ErrBadAnnotation is wrapped when a fedmesh annotation cannot be read.
var ErrBadAnnotation = errors.New("bad annotation")

// Skip reports why a pod is left alone ("" when it is to be injected):
// it opted out, or it is injected already, or it uses the host network
// (where iptables rules would capture the node's traffic).
func Skip(meta *metav1.ObjectMeta, spec *corev1.PodSpec) string {
	switch {
	case meta.Annotations[AnnotationInject] == "false":
		return "opted out with " + AnnotationInject + "=false"
	case meta.Annotations[AnnotationInjected] == "true":
		return "already injected"
	case spec.HostNetwork:
		return "uses the host network"
	}
	return ""
}

// Inject adds the iptables init container, the sidecar (a native sidecar:
// an init container that keeps running) and the projected token volume to
// the pod, and marks it injected. It reports false, changing nothing, when
// Skip gives a reason. On error the pod is unchanged.
func (in *Injector) Inject(meta *metav1.ObjectMeta, spec *corev1.PodSpec) (bool, error) {
	if Skip(meta, spec) != "" {
		return false, nil
	}
	for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
		if c.Name == SidecarName || c.Name == InitName {
			return false, fmt.Errorf("%w: container %q", ErrConflict, c.Name)
		}
	}
	for _, v := range spec.Volumes {
		if v.Name == TokenVolumeName || v.Name == RootsVolumeName || v.Name == StateVolumeName {
			return false, fmt.Errorf("%w: volume %q", ErrConflict, v.Name)
		}
	}
	capture, plaintext, err := in.capture(meta)
	if err != nil {
		return false, err
	}
	probes, err := in.rewriteProbes(spec)
	if err != nil {
		return false, err
	}
	opaque, err := in.opaquePorts(meta)
	if err != nil {
		return false, err
	}

	// The projected token needs a service account; Kubernetes' own
	// ServiceAccount admission plugin sets this default before webhooks
	// run, but offline manifests may leave it out.
	if spec.ServiceAccountName == "" {
		spec.ServiceAccountName = "default"
	}
	sc := in.sidecar(meta.Labels)
	sc.Args = append(sc.Args, "--opaque-ports="+opaque.String())
	sc.Args = append(sc.Args, "--inbound-plaintext="+plaintext)
	if capture.DNSPort != 0 {
		// The pod's DNS comes to the sidecar: clusterset names resolve
		// to their ClusterSetIPs, which the outbound capture serves;
		// other names go on to the pod's own nameservers. IPv6 queries
		// are redirected to ::1, the second listener.
		sc.Args = append(sc.Args, "--dns=127.0.0.1:"+itoa(capture.DNSPort), "--dns-ipv6=[::1]:"+itoa(capture.DNSPort),
			"--dns-clusterset-ip", "--dns-upstream=file:/etc/resolv.conf")
	} else {
		sc.Args = append(sc.Args, "--dns=none")
	}
	if probes != "" {
		sc.Args = append(sc.Args, "--app-probes="+probes)
	}
	inits := []corev1.Container{in.initContainer(capture), sc}
	spec.InitContainers = append(inits, spec.InitContainers...)
	spec.Volumes = append(spec.Volumes, in.tokenVolume(), in.rootsVolume(), stateVolume())
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[AnnotationInjected] = "true"
	return true, nil
}

// ParsePorts reads a comma-separated list of port numbers.
func ParsePorts(s string) ([]int32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int32
	seen := map[int32]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		p, err := strconv.ParseUint(f, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%q is not a port number from 1 to 65535", f)
		}
		if !seen[int32(p)] {
			seen[int32(p)] = true
			out = append(out, int32(p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func ptr[T any](v T) *T { return &v }

func (in *Injector) initContainer(c Capture) corev1.Container {
	return corev1.Container{
		Name:    InitName,
		Image:   in.cfg.InitImage,
		Command: []string{"sh", "-c", c.Script()},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr[int64](0),
			RunAsNonRoot:             ptr(false),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
		Resources: corev1.ResourceRequirements{},
	}
}

// sidecar is the sidecar container of a pod with labels. It announces
// the labels the pod has when it is admitted (--labels), as its
// endpoints carry them (catalog.EndpointLabels), for failoverPriority.
func (in *Injector) sidecar(labels map[string]string) corev1.Container {
	c := in.cfg
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	ctr := corev1.Container{
		Name:    SidecarName,
		Image:   c.SidecarImage,
		Command: []string{ProxyCommand},
		Args: []string{
			"sidecar",
			"--cluster=" + c.Cluster,
			"--xds-address=" + c.XDSAddress,
			"--trust-domain=" + c.TrustDomain,
			"--token-file=" + TokenDir + "/token",
			"--root-bundle=" + RootsDir + "/" + RootsKey,
			"--data-dir=" + StateDir,
			"--namespace=$(POD_NAMESPACE)",
			"--service-account=$(SERVICE_ACCOUNT)",
			"--workload=$(POD_NAME)",
			"--address=$(POD_IP)",
			// What only the app may use is on loopback: iptables
			// REDIRECT delivers the app's outbound traffic to 127.0.0.1
			// (ip6tables to ::1), and whoever reaches the outbound port
			// speaks with the pod's identity.
			"--outbound=127.0.0.1:" + itoa(c.OutboundPort),
			"--outbound-ipv6=[::1]:" + itoa(c.OutboundPort),
			// Connections arrive redirected: the sidecar reads their
			// original destination, meshes those to services and passes
			// the others through.
			"--capture",
			"--admin=127.0.0.1:" + itoa(c.AdminPort),
			// REDIRECT delivers inbound traffic to the pod IP, of
			// either family; the ready port is for the kubelet's
			// probes.
			"--inbound=:" + itoa(c.InboundPort),
			"--ready=:" + itoa(c.ReadyPort),
			// Apps reach services through the outbound capture: no
			// listener per service port (it would take the app's own
			// ports). DNS: see Inject.
			"--service-ip=none",
		},
		Env: []corev1.EnvVar{
			field("POD_NAME", "metadata.name"),
			field("POD_NAMESPACE", "metadata.namespace"),
			field("POD_IP", "status.podIP"),
			field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		},
		// A native sidecar: started before the app's containers, stopped
		// after them.
		RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
		// Only the ports reachable from outside the pod; the outbound and
		// admin ports are on loopback.
		Ports: []corev1.ContainerPort{
			{Name: "fm-inbound", ContainerPort: c.InboundPort},
			{Name: "fm-ready", ContainerPort: c.ReadyPort},
		},
		StartupProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intOrString(c.ReadyPort)}},
			PeriodSeconds:    1,
			FailureThreshold: 60,
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(c.ProxyUID),
			RunAsGroup:               ptr(c.ProxyUID),
			RunAsNonRoot:             ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: TokenVolumeName, MountPath: TokenDir, ReadOnly: true},
			{Name: RootsVolumeName, MountPath: RootsDir, ReadOnly: true},
			{Name: StateVolumeName, MountPath: StateDir},
		},
	}
	if l := naming.FormatLabels(catalog.EndpointLabels(labels)); l != "" {
		ctr.Args = append(ctr.Args, "--labels="+l)
	}
	return ctr
}

func (in *Injector) tokenVolume() corev1.Volume {
	return corev1.Volume{
		Name: TokenVolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          in.cfg.TokenAudience,
				ExpirationSeconds: ptr(in.cfg.TokenExpiration),
				Path:              "token",
			}}},
		}},
	}
}

// stateVolume is the sidecar's data directory: an emptyDir in memory,
// since it holds the workload's private key, that outlives restarts of
// the sidecar container but not the pod.
func stateVolume() corev1.Volume {
	return corev1.Volume{
		Name:         StateVolumeName,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}},
	}
}

// rootsVolume holds the federation's root bundle, from the ConfigMap the
// control plane's installation provides in every injected namespace.
func (in *Injector) rootsVolume() corev1.Volume {
	return corev1.Volume{
		Name: RootsVolumeName,
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: in.cfg.RootsConfigMap},
			Items:                []corev1.KeyToPath{{Key: RootsKey, Path: RootsKey}},
		}},
	}
}
