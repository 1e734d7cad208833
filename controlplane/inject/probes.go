package inject

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
)

// AppProbe is an app container's probe as the sidecar makes it for the
// kubelet, by Kind:
//   - "" (HTTP): GET Path on Port of the pod with Headers, over TLS
//     without verifying the app's certificate when Scheme is HTTPS (as
//     the kubelet does);
//   - "tcp": a TCP connection to Port;
//   - "grpc": the grpc.health.v1 Check of Service on Port, in
//     plaintext (as the kubelet does).
//
// The JSON of an HTTP probe is what it was before the other kinds
// (port, path, headers), so an older sidecar reads it alike.
type AppProbe struct {
	Kind    string            `json:"kind,omitempty"`
	Port    int32             `json:"port"`
	Scheme  string            `json:"scheme,omitempty"`
	Path    string            `json:"path,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Service string            `json:"service,omitempty"`
	// TimeoutSeconds is the probe's own (the kubelet's default, 1, when
	// the pod leaves it out): the sidecar gives the app no longer.
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
}

// The kinds of AppProbe.
const (
	ProbeHTTP = ""
	ProbeTCP  = "tcp"
	ProbeGRPC = "grpc"
)

// AppHealthPrefix starts the path of a rewritten probe on the ready port:
// /app-health/CONTAINER/livez, readyz or startupz.
const AppHealthPrefix = "/app-health/"

// rewriteProbes points the probes of the app containers (httpGet over
// HTTP or HTTPS, tcpSocket and grpc, as Istio's app-health rewrite does)
// at the sidecar's ready port, which the capture rules let through, as
// HTTP GETs of /app-health/CONTAINER/KIND, and returns the original
// probes by their new path, as the sidecar's --app-probes JSON ("" when
// there are none). The sidecar makes the original check of the app, so a
// probe works whatever the pod's inbound mode. Probes of another host,
// of a named port the container does not declare and exec probes are
// left alone.
func (in *Injector) rewriteProbes(spec *corev1.PodSpec) (string, error) {
	probes := map[string]AppProbe{}
	for i := range spec.Containers {
		ctr := &spec.Containers[i]
		for _, p := range []struct {
			kind  string
			probe *corev1.Probe
		}{{"livez", ctr.LivenessProbe}, {"readyz", ctr.ReadinessProbe}, {"startupz", ctr.StartupProbe}} {
			if p.probe == nil {
				continue
			}
			ap, ok := appProbe(ctr, p.probe)
			if !ok {
				continue
			}
			path := AppHealthPrefix + ctr.Name + "/" + p.kind
			probes[path] = ap
			p.probe.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intOrString(in.cfg.ReadyPort)}}
		}
	}
	if len(probes) == 0 {
		return "", nil
	}
	b, err := json.Marshal(probes)
	return string(b), err
}

// appProbe is what the sidecar must do for probe of ctr; false when the
// probe stays as it is.
func appProbe(ctr *corev1.Container, probe *corev1.Probe) (AppProbe, bool) {
	ap := AppProbe{TimeoutSeconds: probe.TimeoutSeconds}
	switch h := probe.ProbeHandler; {
	case h.HTTPGet != nil:
		g := h.HTTPGet
		if g.Host != "" {
			return AppProbe{}, false
		}
		switch g.Scheme {
		case "", corev1.URISchemeHTTP:
		case corev1.URISchemeHTTPS:
			ap.Scheme = string(corev1.URISchemeHTTPS)
		default:
			return AppProbe{}, false
		}
		ap.Path = g.Path
		for _, hd := range g.HTTPHeaders {
			if ap.Headers == nil {
				ap.Headers = map[string]string{}
			}
			ap.Headers[hd.Name] = hd.Value
		}
		port, ok := containerPort(ctr, g.Port.IntVal, g.Port.StrVal)
		ap.Port = port
		return ap, ok
	case h.TCPSocket != nil:
		if h.TCPSocket.Host != "" {
			return AppProbe{}, false
		}
		port, ok := containerPort(ctr, h.TCPSocket.Port.IntVal, h.TCPSocket.Port.StrVal)
		ap.Kind, ap.Port = ProbeTCP, port
		return ap, ok
	case h.GRPC != nil:
		port, ok := containerPort(ctr, h.GRPC.Port, "")
		ap.Kind, ap.Port = ProbeGRPC, port
		if h.GRPC.Service != nil {
			ap.Service = *h.GRPC.Service
		}
		return ap, ok
	}
	return AppProbe{}, false
}
