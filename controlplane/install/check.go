package install

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// MinMinor is the oldest Kubernetes minor version (1.MinMinor) fedmesh
// supports: its client is v0.37 and the API server may be up to six minor
// versions older.
const MinMinor = 31

// Names of the Secrets whose certificates the check reads.
const (
	ClusterCASecret  = "fedmesh-cluster-ca"
	WebhookTLSSecret = "fedmesh-webhook-tls"
	webhookConfig    = "fedmesh-sidecar-injector"
	controlPlaneName = "fedmesh-controlplane"
)

// Member is a federation member as the admin API reports it.
type Member struct {
	Name   string
	Status string
}

// CheckConfig says what Run checks.
type CheckConfig struct {
	// Pre runs the pre-install checks (the API server and the caller's
	// permissions to install) instead of the post-install ones.
	Pre bool
	// Namespace is where fedmesh is installed; empty means
	// DefaultNamespace.
	Namespace string
	// Members lists the federation's members through the control plane's
	// admin API; nil skips the federation check with a hint.
	Members func(context.Context) ([]Member, error)
	// Now is the clock for certificate expiry; nil means time.Now.
	Now func() time.Time
	// ExpiryWarning fails a certificate that expires sooner than this;
	// zero means 30 days.
	ExpiryWarning time.Duration
}

// Run checks the cluster c talks to against objs (Render's output) and
// returns the report; an error only when the API server cannot be asked at
// all.
func (c *Client) Run(ctx context.Context, objs []*unstructured.Unstructured, cfg CheckConfig) (Report, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ExpiryWarning == 0 {
		cfg.ExpiryWarning = 30 * 24 * time.Hour
	}
	r := Report{Phase: "post-install"}
	if cfg.Pre {
		r.Phase = "pre-install"
	}
	if err := c.checkVersion(&r); err != nil {
		return r, err
	}
	if cfg.Pre {
		return r, c.checkInstallPermissions(ctx, &r, objs)
	}
	for _, f := range []func(context.Context, *Report, []*unstructured.Unstructured, CheckConfig) error{
		c.checkCRDs, c.checkControlPlaneRBAC, c.checkControlPlaneReady, c.checkWebhook, c.checkPeers, c.checkJoin, c.checkCertificates,
	} {
		if err := f(ctx, &r, objs, cfg); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (c *Client) checkVersion(r *Report) error {
	major, minor, git, err := c.serverVersion()
	if err != nil {
		return fmt.Errorf("ask the API server its version: %w", err)
	}
	m, err := strconv.Atoi(strings.TrimRight(minor, "+"))
	if major != "1" || err != nil {
		r.add("kubernetes-version", Fail, fmt.Sprintf("cannot read the version %q.%q (%s)", major, minor, git), "fedmesh needs Kubernetes 1."+strconv.Itoa(MinMinor)+" or newer")
		return nil
	}
	if m < MinMinor {
		r.add("kubernetes-version", Fail, fmt.Sprintf("%s is older than 1.%d", git, MinMinor), fmt.Sprintf("upgrade the cluster to Kubernetes 1.%d or newer", MinMinor))
		return nil
	}
	r.add("kubernetes-version", Pass, fmt.Sprintf("%s (1.%d or newer)", git, MinMinor), "")
	return nil
}

// checkInstallPermissions asks whether the caller may create and patch
// every object of objs (SelfSubjectAccessReview).
func (c *Client) checkInstallPermissions(ctx context.Context, r *Report, objs []*unstructured.Unstructured) error {
	var denied []string
	for _, o := range objs {
		_, mapping, err := c.resource(o)
		if err != nil {
			if o.GetKind() == "CustomResourceDefinition" {
				return err
			}
			continue // a kind of a CRD not installed yet
		}
		for _, verb := range []string{"create", "patch"} {
			ssar := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
				Verb: verb, Group: mapping.Resource.Group, Resource: mapping.Resource.Resource, Namespace: o.GetNamespace(), Name: o.GetName(),
			}}}
			got, err := c.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, ssar, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("self subject access review: %w", err)
			}
			if !got.Status.Allowed {
				denied = append(denied, verb+" "+ref(o))
			}
		}
	}
	if len(denied) > 0 {
		r.add("install-permissions", Fail, fmt.Sprintf("you may not %s", strings.Join(denied, ", ")), "install as a cluster administrator (kubectl auth can-i create customresourcedefinitions)")
		return nil
	}
	r.add("install-permissions", Pass, fmt.Sprintf("you may create and patch all %d objects", len(objs)), "")
	return nil
}

func (c *Client) checkCRDs(ctx context.Context, r *Report, objs []*unstructured.Unstructured, _ CheckConfig) error {
	names := crdNames(objs)
	var missing []string
	for _, n := range names {
		ok, err := c.crdEstablished(ctx, n)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		r.add("crds", Fail, fmt.Sprintf("%d of %d CRDs missing or not established: %s", len(missing), len(names), strings.Join(missing, ", ")), "run 'fedmesh install', or see 'kubectl get crd NAME -o yaml' for why it is not Established")
		return nil
	}
	r.add("crds", Pass, fmt.Sprintf("%d CRDs established", len(names)), "")
	return nil
}

// checkControlPlaneRBAC asks, for every rule of the control plane's
// ClusterRole and Role in objs, whether the control plane's
// ServiceAccount may do it (SubjectAccessReview): the bindings are in
// place and nothing else took the permissions away.
func (c *Client) checkControlPlaneRBAC(ctx context.Context, r *Report, objs []*unstructured.Unstructured, cfg CheckConfig) error {
	user := "system:serviceaccount:" + cfg.Namespace + ":" + controlPlaneName
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + cfg.Namespace, "system:authenticated"}
	var denied []string
	asked := 0
	for _, o := range objs {
		if (o.GetKind() != "ClusterRole" && o.GetKind() != "Role") || o.GetName() != controlPlaneName {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, rule := range rules {
			m, _ := rule.(map[string]any)
			apiGroups, _, _ := unstructured.NestedStringSlice(m, "apiGroups")
			resources, _, _ := unstructured.NestedStringSlice(m, "resources")
			verbs, _, _ := unstructured.NestedStringSlice(m, "verbs")
			names, _, _ := unstructured.NestedStringSlice(m, "resourceNames")
			name := ""
			if len(names) > 0 {
				name = names[0]
			}
			for _, g := range apiGroups {
				for _, res := range resources {
					resource, sub, _ := strings.Cut(res, "/")
					for _, v := range verbs {
						asked++
						sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &authzv1.ResourceAttributes{
							Verb: v, Group: g, Resource: resource, Subresource: sub, Namespace: o.GetNamespace(), Name: name,
						}}}
						got, err := c.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
						if apierrors.IsForbidden(err) {
							r.add("controlplane-rbac", Skip, "you may not create SubjectAccessReviews", "run 'fedmesh check' as a cluster administrator")
							return nil
						}
						if err != nil {
							return fmt.Errorf("subject access review: %w", err)
						}
						if !got.Status.Allowed {
							denied = append(denied, fmt.Sprintf("%s %s", v, res))
						}
					}
				}
			}
		}
	}
	switch {
	case asked == 0:
		r.add("controlplane-rbac", Fail, "the manifests have no role for the control plane", "this build of fedmesh is broken: report it")
	case len(denied) > 0:
		r.add("controlplane-rbac", Fail, fmt.Sprintf("%s may not: %s", user, strings.Join(denied, ", ")), "run 'fedmesh install' again to restore the roles and bindings; 'kubectl auth can-i --as="+user+" ...' shows the same")
	default:
		r.add("controlplane-rbac", Pass, fmt.Sprintf("%s may do all %d things it needs", user, asked), "")
	}
	return nil
}

func (c *Client) checkControlPlaneReady(ctx context.Context, r *Report, objs []*unstructured.Unstructured, cfg CheckConfig) error {
	for _, o := range objs {
		if o.GetKind() != "StatefulSet" || o.GetName() != controlPlaneName {
			continue
		}
		ri, _, err := c.resource(o)
		if err != nil {
			return err
		}
		cur, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			r.add("controlplane-ready", Fail, "statefulset/"+controlPlaneName+" is missing", "run 'fedmesh install'")
			return nil
		}
		if err != nil {
			return fmt.Errorf("get statefulset/%s: %w", controlPlaneName, err)
		}
		ok, how := workloadReady(cur)
		if !ok {
			r.add("controlplane-ready", Fail, "statefulset/"+controlPlaneName+": "+how,
				fmt.Sprintf("see 'kubectl -n %s get pods -l app.kubernetes.io/name=%s' and 'kubectl -n %s describe statefulset %s': no pod means no controller or no node runs it; a pod that is not ready usually lacks the Secret %s ('fedmesh install --root-dir' issues it)",
					cfg.Namespace, controlPlaneName, cfg.Namespace, controlPlaneName, ClusterCASecret))
			return nil
		}
		r.add("controlplane-ready", Pass, "statefulset/"+controlPlaneName+": "+how, "")
		return nil
	}
	return errors.New("the manifests have no control plane StatefulSet")
}

func (c *Client) checkWebhook(ctx context.Context, r *Report, _ []*unstructured.Unstructured, cfg CheckConfig) error {
	wh, err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhookConfig, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		r.add("webhook", Fail, "mutatingwebhookconfiguration/"+webhookConfig+" is missing", "run 'fedmesh install'")
		return nil
	}
	if err != nil {
		return fmt.Errorf("get mutatingwebhookconfiguration/%s: %w", webhookConfig, err)
	}
	for _, h := range wh.Webhooks {
		if len(h.ClientConfig.CABundle) == 0 {
			r.add("webhook", Fail, fmt.Sprintf("webhook %s has no caBundle: the API server cannot trust it", h.Name),
				fmt.Sprintf("put the CA of the Secret %s/%s into webhooks[].clientConfig.caBundle ('fedmesh install' does: it puts that Secret's CA there wherever it differs)", cfg.Namespace, WebhookTLSSecret))
			return nil
		}
		svc := h.ClientConfig.Service
		if svc == nil {
			continue
		}
		slices, err := c.kube.DiscoveryV1().EndpointSlices(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + svc.Name})
		if err != nil {
			return fmt.Errorf("list the endpoints of service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		ready := 0
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					ready++
				}
			}
		}
		if ready == 0 {
			r.add("webhook", Fail, fmt.Sprintf("service %s/%s has no ready endpoints: pods are created without the sidecar", svc.Namespace, svc.Name),
				fmt.Sprintf("see 'kubectl -n %s get pods -l app.kubernetes.io/name=fedmesh-webhook'; the pods need the Secret %s", svc.Namespace, WebhookTLSSecret))
			return nil
		}
		r.add("webhook", Pass, fmt.Sprintf("%s: service %s/%s has %d ready endpoints", h.Name, svc.Namespace, svc.Name, ready), "")
		return nil
	}
	r.add("webhook", Fail, "mutatingwebhookconfiguration/"+webhookConfig+" has no webhook with a service", "run 'fedmesh install' again")
	return nil
}

func (c *Client) checkPeers(ctx context.Context, r *Report, _ []*unstructured.Unstructured, cfg CheckConfig) error {
	if cfg.Members == nil {
		r.add("federation-peers", Skip, "no admin API address given",
			fmt.Sprintf("kubectl -n %s port-forward statefulset/%s 15014 & then 'fedmesh check --admin https://127.0.0.1:15014' with an operator certificate", cfg.Namespace, controlPlaneName))
		return nil
	}
	ms, err := cfg.Members(ctx)
	if err != nil {
		r.add("federation-peers", Skip, fmt.Sprintf("the admin API did not answer: %v", err), "check --admin and the operator certificate ('fedmesh members list' uses the same)")
		return nil
	}
	var bad []string
	for _, m := range ms {
		if m.Status != "alive" {
			bad = append(bad, m.Name+" "+m.Status)
		}
	}
	switch {
	case len(bad) > 0:
		r.add("federation-peers", Fail, fmt.Sprintf("%d of %d members are not alive: %s", len(bad), len(ms), strings.Join(bad, ", ")), "see 'fedmesh members list'; 'fedmesh members forget NAME' removes one that is gone for good")
	case len(ms) < 2:
		r.add("federation-peers", Pass, "this cluster has not joined a federation yet", "")
	default:
		r.add("federation-peers", Pass, fmt.Sprintf("%d members, all alive", len(ms)), "")
	}
	return nil
}

// checkCertificates reads the cluster CA and the webhook's serving
// certificate from their Secrets and fails one that expired or expires
// within cfg.ExpiryWarning.
func (c *Client) checkCertificates(ctx context.Context, r *Report, _ []*unstructured.Unstructured, cfg CheckConfig) error {
	for _, s := range []struct{ name, secret, key, renew string }{
		{"cluster-ca-expiry", ClusterCASecret, "ca.crt", "'fedmesh ca rotate intermediate' renews the cluster CA; put the new ca-dir into the Secret"},
		{"webhook-cert-expiry", WebhookTLSSecret, "tls.crt", "issue a new serving certificate into the Secret and the caBundle"},
	} {
		sec, err := c.kube.CoreV1().Secrets(cfg.Namespace).Get(ctx, s.secret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			r.add(s.name, Skip, fmt.Sprintf("no Secret %s/%s", cfg.Namespace, s.secret), "deploy/README.md lists the Secrets the installation expects")
			continue
		}
		if err != nil {
			return fmt.Errorf("get secret %s/%s: %w", cfg.Namespace, s.secret, err)
		}
		status, msg := certExpiry(sec.Data[s.key], cfg.Now(), cfg.ExpiryWarning)
		hint := ""
		if status == Fail {
			hint = s.renew
		}
		r.add(s.name, status, fmt.Sprintf("%s/%s %s: %s", cfg.Namespace, s.secret, s.key, msg), hint)
	}
	return nil
}

// certExpiry judges the first certificate in pemData at now.
func certExpiry(pemData []byte, now time.Time, warn time.Duration) (Status, string) {
	b, _ := pem.Decode(pemData)
	if b == nil || b.Type != "CERTIFICATE" {
		return Fail, "no PEM certificate"
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return Fail, fmt.Sprintf("not a certificate: %v", err)
	}
	left := cert.NotAfter.Sub(now)
	when := cert.NotAfter.UTC().Format(time.RFC3339)
	switch {
	case left <= 0:
		return Fail, "expired at " + when
	case left < warn:
		return Fail, fmt.Sprintf("expires at %s, in less than %s", when, warn)
	}
	return Pass, fmt.Sprintf("valid until %s (%d days)", when, int(left.Hours()/24))
}
