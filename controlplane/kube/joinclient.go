package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fedmesh/fedmesh/catalog"
)

// ErrJoinRefused is wrapped by CopyJoinToken's error when a control
// plane of the joining cluster refused the token.
var ErrJoinRefused = errors.New("the joining cluster's control plane refused the token")

// CopyJoin is what CopyJoinToken did.
type CopyJoin struct {
	// Issuer is the cluster whose token was copied.
	Issuer string `json:"issuer"`
	// Secret is the join Secret written in the joining cluster.
	Secret string `json:"secret"`
	// Expiry is the token's expiry.
	Expiry time.Time `json:"expiry"`
	// Statuses are the joining cluster's replicas' outcomes, by member
	// name; empty when not waited for.
	Statuses map[string]JoinStatus `json:"statuses,omitempty"`
}

// CopyJoinToken is 'fedmesh join' between clusters in Kubernetes: it
// reads the current join token that the control plane of cluster from
// publishes (Secret JoinTokenSecret in namespace), writes it to Secret
// JoinSecret of cluster to, where to's control planes join
// with it, and, when wait is positive, waits that long for one of them
// to record that it joined. A control plane that refused the token
// makes the error wrap ErrJoinRefused and name its reason.
func CopyJoinToken(ctx context.Context, from, to kubernetes.Interface, namespace string, wait time.Duration) (CopyJoin, error) {
	src, err := from.CoreV1().Secrets(namespace).Get(ctx, JoinTokenSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return CopyJoin{}, fmt.Errorf("the cluster to join has no Secret %s/%s: is fedmesh installed there and its control plane running?", namespace, JoinTokenSecret)
	}
	if err != nil {
		return CopyJoin{}, fmt.Errorf("read the join token: %w", err)
	}
	issuer := src.Annotations[AnnotationIssuer]
	if why := catalog.IsDNS1123Label(issuer); why != "" {
		return CopyJoin{}, fmt.Errorf("join token Secret %s/%s: annotation %s %q: %s", namespace, JoinTokenSecret, AnnotationIssuer, issuer, why)
	}
	tok := strings.TrimSpace(string(src.Data[KeyToken]))
	if tok == "" {
		return CopyJoin{}, fmt.Errorf("join token Secret %s/%s has no %s", namespace, JoinTokenSecret, KeyToken)
	}
	out := CopyJoin{Issuer: issuer, Secret: JoinSecret}
	if exp, err := time.Parse(time.RFC3339, string(src.Data[KeyExpiry])); err == nil {
		out.Expiry = exp
		if time.Now().After(exp) {
			return out, fmt.Errorf("the join token of %s expired at %s: is its control plane running?", issuer, exp.Format(time.RFC3339))
		}
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: out.Secret, Namespace: namespace,
			Labels:      map[string]string{"app.kubernetes.io/part-of": "fedmesh"},
			Annotations: map[string]string{AnnotationIssuer: issuer},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{KeyToken: []byte(tok)},
	}
	if err := putSecret(ctx, to, sec); err != nil {
		return out, fmt.Errorf("write the join Secret %s/%s: %w", namespace, out.Secret, err)
	}
	if wait <= 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	digest := TokenDigest(tok)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		got, err := to.CoreV1().Secrets(namespace).Get(ctx, out.Secret, metav1.GetOptions{})
		if err == nil {
			out.Statuses = statuses(got, digest)
			var refused []string
			for _, m := range sortedMembers(out.Statuses) {
				st := out.Statuses[m]
				if st.Joined {
					return out, nil
				}
				refused = append(refused, m+": "+st.Error)
			}
			if len(refused) > 0 {
				return out, fmt.Errorf("%w: %s", ErrJoinRefused, strings.Join(refused, "; "))
			}
		}
		select {
		case <-ctx.Done():
			return out, fmt.Errorf("no control plane of the joining cluster took the token within %s (is it running, and allowed to read Secrets in %s?)", wait, namespace)
		case <-t.C:
		}
	}
}

// statuses reads the replicas' outcomes for the token with digest; an
// annotation that does not parse or is for another token is left out.
func statuses(sec *corev1.Secret, digest string) map[string]JoinStatus {
	out := map[string]JoinStatus{}
	for k, v := range sec.Annotations {
		member, ok := strings.CutPrefix(k, JoinStatusPrefix)
		if !ok {
			continue
		}
		var st JoinStatus
		if json.Unmarshal([]byte(v), &st) != nil || st.Token != digest {
			continue
		}
		out[member] = st
	}
	return out
}

func sortedMembers(m map[string]JoinStatus) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
