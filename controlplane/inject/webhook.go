package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxReviewBytes bounds an AdmissionReview request body.
const MaxReviewBytes = 4 << 20

// Reasons a review is refused or a pod left alone: the reason label of
// fedmesh_inject_reviews_total.
const (
	ResultInjected   = "injected"
	ResultSkipped    = "skipped"
	ResultDenied     = "denied"
	ReasonBadMethod  = "bad_method"
	ReasonTooLarge   = "too_large"
	ReasonBadReview  = "bad_review"
	ReasonNotPod     = "not_pod"
	ReasonBadPod     = "bad_pod"
	ReasonReadFailed = "read"
)

// Webhook is the mutating admission webhook: it answers AdmissionReviews
// (admission.k8s.io/v1) for pod creation with a JSON patch that injects
// the mesh. Which namespaces it sees is the MutatingWebhookConfiguration's
// namespaceSelector (fedmesh.io/inject=enabled); a pod can still opt out
// with the fedmesh.io/inject=false annotation. It is an http.Handler, safe
// for concurrent use.
type Webhook struct {
	in      *Injector
	log     *slog.Logger
	reviews *prometheus.CounterVec
}

// NewWebhook returns a Webhook that injects with in. Its metrics are
// registered with reg when reg is not nil.
func NewWebhook(in *Injector, log *slog.Logger, reg prometheus.Registerer) (*Webhook, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: webhook needs an injector", ErrConfig)
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Webhook{
		in:  in,
		log: log.With("component", "inject-webhook"),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_inject_reviews_total",
			Help: "Admission reviews answered, by result (injected, skipped, denied, or the reason a request was refused).",
		}, []string{"result"}),
	}
	for _, r := range []string{ResultInjected, ResultSkipped, ResultDenied, ReasonBadMethod, ReasonTooLarge, ReasonBadReview, ReasonNotPod, ReasonBadPod, ReasonReadFailed} {
		w.reviews.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(w.reviews); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return w, nil
}

// ErrBadReview is wrapped by every error about a malformed request.
var ErrBadReview = errors.New("bad admission review")

// ServeHTTP answers one AdmissionReview.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.refuse(rw, http.StatusMethodNotAllowed, ReasonBadMethod, fmt.Errorf("%w: method %s, want POST", ErrBadReview, r.Method))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxReviewBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			w.refuse(rw, http.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Errorf("%w: body larger than %d bytes", ErrBadReview, MaxReviewBytes))
			return
		}
		w.refuse(rw, http.StatusBadRequest, ReasonReadFailed, fmt.Errorf("%w: read body: %w", ErrBadReview, err))
		return
	}
	resp, result, err := w.Review(body)
	if err != nil {
		reason := ReasonBadReview
		if errors.Is(err, errNotPod) {
			reason = ReasonNotPod
		}
		w.refuse(rw, http.StatusBadRequest, reason, err)
		return
	}
	w.reviews.WithLabelValues(result).Inc()
	rw.Header().Set("Content-Type", "application/json")
	rw.Write(resp)
}

func (w *Webhook) refuse(rw http.ResponseWriter, code int, reason string, err error) {
	w.reviews.WithLabelValues(reason).Inc()
	w.log.Warn("admission request refused", "reason", reason, "err", err)
	http.Error(rw, err.Error(), code)
}

var errNotPod = errors.New("not a pod")

// Review answers the AdmissionReview in body: the encoded response, and
// the result (injected, skipped or denied). A request that is not a
// well-formed AdmissionReview about a pod is an error wrapping
// ErrBadReview. A pod that cannot be injected (a name clash, a bad
// annotation) is denied with a message saying why.
func (w *Webhook) Review(body []byte) ([]byte, string, error) {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrBadReview, err)
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return nil, "", fmt.Errorf("%w: apiVersion %q kind %q, want admission.k8s.io/v1 AdmissionReview", ErrBadReview, review.APIVersion, review.Kind)
	}
	req := review.Request
	if req == nil || req.UID == "" {
		return nil, "", fmt.Errorf("%w: no request or no request uid", ErrBadReview)
	}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" {
		return nil, "", fmt.Errorf("%w: %w: kind %s", ErrBadReview, errNotPod, req.Kind.String())
	}
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	result := ResultSkipped
	if req.Operation == admissionv1.Create {
		var pod corev1.Pod
		if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
			return nil, "", fmt.Errorf("%w: pod: %w", ErrBadReview, err)
		}
		if pod.Namespace == "" {
			pod.Namespace = req.Namespace
		}
		patch, injected, err := w.patch(&pod)
		switch {
		case err != nil:
			result = ResultDenied
			resp.Allowed = false
			resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest,
				Message: fmt.Sprintf("fedmesh cannot inject pod %s/%s: %v", pod.Namespace, podName(&pod), err)}
		case injected:
			result = ResultInjected
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
			w.log.Debug("pod injected", "namespace", pod.Namespace, "pod", podName(&pod))
		}
	}
	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	if err != nil {
		return nil, "", err
	}
	return out, result, nil
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "*"
}

// jsonPatchOp is one RFC 6902 operation.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// patch injects pod and returns a JSON patch from the original to the
// injected pod. "add" of an object member replaces it when present, so
// the ops hold whether or not the pod had annotations, init
// containers or volumes.
func (w *Webhook) patch(pod *corev1.Pod) ([]byte, bool, error) {
	injected, err := w.in.Inject(&pod.ObjectMeta, &pod.Spec)
	if err != nil || !injected {
		return nil, false, err
	}
	ops := []jsonPatchOp{
		{Op: "add", Path: "/metadata/annotations", Value: pod.Annotations},
		{Op: "add", Path: "/spec/initContainers", Value: pod.Spec.InitContainers},
		// The app containers' probes, rewritten to the ready port.
		{Op: "add", Path: "/spec/containers", Value: pod.Spec.Containers},
		{Op: "add", Path: "/spec/volumes", Value: pod.Spec.Volumes},
		{Op: "add", Path: "/spec/serviceAccountName", Value: pod.Spec.ServiceAccountName},
	}
	b, err := json.Marshal(ops)
	return b, true, err
}
