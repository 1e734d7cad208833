package install

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fedmesh/fedmesh/controlplane/kube"
)

// checkJoin reports the two join Secrets (controlplane/kube/join.go):
// the token this cluster's control plane publishes for others to join
// with, and the outcome of the last 'fedmesh join --from-context' into
// this cluster, when there was one.
func (c *Client) checkJoin(ctx context.Context, r *Report, _ []*unstructured.Unstructured, cfg CheckConfig) error {
	secrets := c.kube.CoreV1().Secrets(cfg.Namespace)
	for _, s := range []struct {
		name, secret string
		judge        func(*corev1.Secret, string, time.Time) (Status, string, string)
	}{
		{"join-token", kube.JoinTokenSecret, judgeJoinToken},
		{"join", kube.JoinSecret, judgeJoin},
	} {
		sec, err := secrets.Get(ctx, s.secret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			sec = nil
		} else if err != nil {
			return fmt.Errorf("get secret %s/%s: %w", cfg.Namespace, s.secret, err)
		}
		status, msg, hint := s.judge(sec, cfg.Namespace, cfg.Now())
		r.add(s.name, status, msg, hint)
	}
	return nil
}

// judgeJoinToken judges the Secret kube.JoinTokenSecret (nil: absent) in
// namespace at now: present, with a token, and not expired.
func judgeJoinToken(sec *corev1.Secret, namespace string, now time.Time) (Status, string, string) {
	where := namespace + "/" + kube.JoinTokenSecret
	logs := fmt.Sprintf("see 'kubectl -n %s logs statefulset/%s': the control plane's leader publishes the token and renews it at half its lifetime; it may get and update this Secret by name (Role fedmesh-controlplane-join)", namespace, controlPlaneName)
	if sec == nil {
		return Fail, fmt.Sprintf("no Secret %s: other clusters cannot join this one with 'fedmesh join --from-context'", where), logs
	}
	if strings.TrimSpace(string(sec.Data[kube.KeyToken])) == "" {
		return Fail, fmt.Sprintf("Secret %s has no %s", where, kube.KeyToken), logs
	}
	issuer := sec.Annotations[kube.AnnotationIssuer]
	if issuer == "" {
		issuer = "an unnamed cluster"
	}
	exp, err := time.Parse(time.RFC3339, string(sec.Data[kube.KeyExpiry]))
	if err != nil {
		return Fail, fmt.Sprintf("Secret %s: %s %q is not an RFC 3339 time", where, kube.KeyExpiry, sec.Data[kube.KeyExpiry]), logs
	}
	when := exp.UTC().Format(time.RFC3339)
	if !now.Before(exp) {
		return Fail, fmt.Sprintf("the join token of %s in %s expired at %s: it is not being renewed", issuer, where, when), logs
	}
	return Pass, fmt.Sprintf("the join token of %s in %s is valid until %s", issuer, where, when), ""
}

// judgeJoin judges the Secret kube.JoinSecret (nil: absent) in namespace:
// what this cluster's control plane replicas recorded for its token. One
// replica that joined is enough (as for 'fedmesh join'); a replica that
// refused the token is named even then.
func judgeJoin(sec *corev1.Secret, namespace string, _ time.Time) (Status, string, string) {
	where := namespace + "/" + kube.JoinSecret
	if sec == nil {
		return Pass, fmt.Sprintf("no Secret %s: this cluster was not joined through the API servers", where), ""
	}
	tok := strings.TrimSpace(string(sec.Data[kube.KeyToken]))
	if tok == "" {
		return Fail, fmt.Sprintf("Secret %s has no %s", where, kube.KeyToken), "run 'fedmesh join --context THIS --from-context MEMBER' again"
	}
	issuer := sec.Annotations[kube.AnnotationIssuer]
	if issuer == "" {
		issuer = "an unnamed cluster"
	}
	digest := kube.TokenDigest(tok)
	var joined, refused []string
	for k, v := range sec.Annotations {
		member, ok := strings.CutPrefix(k, kube.JoinStatusPrefix)
		if !ok {
			continue
		}
		var st kube.JoinStatus
		if json.Unmarshal([]byte(v), &st) != nil || st.Token != digest {
			continue // unreadable, or about an earlier token
		}
		if st.Joined {
			joined = append(joined, member)
		} else {
			refused = append(refused, member+": "+st.Error)
		}
	}
	slices.Sort(joined)
	slices.Sort(refused)
	refusedMsg := ""
	if len(refused) > 0 {
		refusedMsg = "; refused by " + strings.Join(refused, "; ")
	}
	switch {
	case len(joined) > 0:
		return Pass, fmt.Sprintf("joined the federation of %s (%s)%s", issuer, strings.Join(joined, ", "), refusedMsg), ""
	case len(refused) > 0:
		return Fail, fmt.Sprintf("the join token of %s in %s was refused by %s", issuer, where, strings.Join(refused, "; ")),
			"an expired, altered or foreign token joins nothing: run 'fedmesh join --context THIS --from-context MEMBER' again, from a member of the federation whose root this cluster's CA was issued from"
	}
	return Fail, fmt.Sprintf("no control plane replica has taken the join token of %s in %s yet", issuer, where),
		fmt.Sprintf("see 'kubectl -n %s logs statefulset/%s': the replicas read the Secret by name (Role fedmesh-controlplane-join) and record the outcome on it", namespace, controlPlaneName)
}
