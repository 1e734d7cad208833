package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultAudience is the audience of the projected ServiceAccount token a
// sidecar presents to the control plane.
const DefaultAudience = "fedmesh"

// ErrUnauthenticated is wrapped by every error of TokenReviewer that says
// the token does not prove an identity (as opposed to the API server
// being unreachable).
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticator proves a workload's identity from a bearer token. It is
// called concurrently. *TokenReviewer implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (namespace, serviceAccount string, err error)
}

var _ Authenticator = (*TokenReviewer)(nil)

// TokenReviewer checks projected ServiceAccount tokens with the API
// server's TokenReview API: the token must be valid, for the audience, and
// name a ServiceAccount (system:serviceaccount:NAMESPACE:NAME). The control
// plane's ServiceAccount needs create on tokenreviews (see deploy/).
type TokenReviewer struct {
	client    kubernetes.Interface
	audiences []string
	timeout   time.Duration
}

// NewTokenReviewer returns a TokenReviewer that asks client and wants the
// token's audience to be one of audiences (DefaultAudience when empty).
func NewTokenReviewer(client kubernetes.Interface, audiences ...string) (*TokenReviewer, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: token reviewer needs a Kubernetes client", ErrConfig)
	}
	if len(audiences) == 0 {
		audiences = []string{DefaultAudience}
	}
	return &TokenReviewer{client: client, audiences: audiences, timeout: 10 * time.Second}, nil
}

// Authenticate returns the namespace and ServiceAccount the token was
// issued to.
func (r *TokenReviewer) Authenticate(ctx context.Context, token string) (string, string, error) {
	ns, sa, _, err := r.review(ctx, token)
	return ns, sa, err
}

// Verify is Authenticate for callers without a context, such as the xDS
// server's token authenticator; workload is the pod the token is bound to,
// when the token is bound to one.
func (r *TokenReviewer) Verify(token string) (namespace, serviceAccount, workload string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	return r.review(ctx, token)
}

// podNameExtra is the TokenReview extra that names the pod a projected
// token is bound to.
const podNameExtra = "authentication.kubernetes.io/pod-name"

func (r *TokenReviewer) review(ctx context.Context, token string) (string, string, string, error) {
	if token == "" {
		return "", "", "", fmt.Errorf("%w: empty token", ErrUnauthenticated)
	}
	tr, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: r.audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", "", "", fmt.Errorf("token review: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "token not authenticated"
		}
		return "", "", "", fmt.Errorf("%w: %s", ErrUnauthenticated, why)
	}
	ns, sa, ok := ParseServiceAccountUser(st.User.Username)
	if !ok {
		return "", "", "", fmt.Errorf("%w: token is for %q, not a ServiceAccount", ErrUnauthenticated, st.User.Username)
	}
	var workload string
	if v := st.User.Extra[podNameExtra]; len(v) == 1 {
		workload = v[0]
	}
	return ns, sa, workload, nil
}

// ParseServiceAccountUser reads a username of the form
// system:serviceaccount:NAMESPACE:NAME.
func ParseServiceAccountUser(user string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(user, "system:serviceaccount:")
	if !found {
		return "", "", false
	}
	namespace, name, found = strings.Cut(rest, ":")
	if !found || namespace == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return namespace, name, true
}
