package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/fedmesh/fedmesh/federation/adminapi"
)

// This file is 'fedmesh join' between clusters that run in Kubernetes:
// what the admin API exchanges between local control planes (a signed
// join token carrying the gossip keys, the root bundle and seed
// addresses) travels through the API servers instead, in Secrets of the
// control plane's namespace.
//
//   - Every cluster's control plane (its leader) keeps a fresh token in
//     Secret JoinTokenSecret, renewed at half its lifetime.
//   - 'fedmesh join --context B --from-context A' copies A's token into
//     Secret JoinSecret in B's namespace (one at a time: one join makes
//     the full mesh).
//   - Every replica of B's control plane reads that Secret, joins with a
//     token it has not used yet (verified against its own root
//     first, as the admin API does) and records the outcome in an
//     annotation JoinStatusPrefix+MEMBER on the Secret, which the CLI
//     waits for.

// Names of the join Secrets and their keys.
const (
	// JoinTokenSecret holds the cluster's own current join token.
	JoinTokenSecret = "fedmesh-join-token"
	// JoinSecret asks the cluster to join the federation of another
	// cluster's token. A fixed name keeps the control plane's access to
	// Secrets to these two by name (deploy/base/rbac.yaml): no list.
	JoinSecret = "fedmesh-join"
	// JoinStatusPrefix starts the annotation in which one control plane
	// replica (its member name follows) records what it did with the
	// Secret's token: a JoinStatus in JSON.
	JoinStatusPrefix = "join.fedmesh.io/"
	// KeyToken is the Secret key of the token; KeyExpiry (RFC 3339) and
	// KeySeeds (comma separated) describe it for humans.
	KeyToken  = "token"
	KeyExpiry = "expiry"
	KeySeeds  = "seeds"
	// AnnotationIssuer names the cluster a token Secret comes from.
	AnnotationIssuer = "fedmesh.io/issuer"
)

// JoinStatus is what one replica did with a join Secret's token.
type JoinStatus struct {
	// Token is the first 12 hex digits of the token's SHA-256: the
	// status belongs to this token only.
	Token string `json:"token"`
	// Joined is true when the replica joined; Error says why not.
	Joined    bool   `json:"joined"`
	Issuer    string `json:"issuer,omitempty"`
	Contacted int    `json:"contacted,omitempty"`
	Error     string `json:"error,omitempty"`
}

// TokenDigest is the JoinStatus.Token of token.
func TokenDigest(token string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return hex.EncodeToString(sum[:6])
}

// JoinConfig configures a Joiner.
type JoinConfig struct {
	// Client reads and writes Secrets in Namespace. Required.
	Client kubernetes.Interface
	// Namespace is the control plane's namespace. Required.
	Namespace string
	// Cluster is this cluster's name, Member this replica's member name
	// (membership.MemberName). Required.
	Cluster, Member string
	// Token creates a join token valid for a lifetime
	// (controlplane.Server.JoinToken). Required.
	Token func(ttl time.Duration) (adminapi.TokenResponse, error)
	// Join verifies a token and joins its federation
	// (controlplane.Server.Join). An error wrapping adminapi.ErrNotReady
	// leaves the token to be tried again; any other is recorded on the
	// Secret, and the token is not tried again. Required.
	Join func(token string) (adminapi.JoinResponse, error)
	// Elector, when set, lets only the leader publish the token; every
	// replica joins. Nil: this replica publishes.
	Elector *Elector
	// TokenTTL is the lifetime of published tokens; default 1h. They
	// are renewed at half of it.
	TokenTTL time.Duration
	// Interval is how often the Joiner looks at the Secrets and retries
	// what failed for a reason that may pass (the federation not up
	// yet); default 2s.
	Interval time.Duration
	// Logger receives the Joiner's logs. Default: discard.
	Logger *slog.Logger
}

// Joiner publishes the cluster's join token and joins with the tokens
// 'fedmesh join' puts in its namespace. Run drives it.
type Joiner struct {
	cfg JoinConfig
	log *slog.Logger

	// Owned by Run's goroutine:
	published time.Time             // when the published token was made
	done      map[string]JoinStatus // outcomes by token digest
}

// NewJoiner validates cfg and returns a Joiner.
func NewJoiner(cfg JoinConfig) (*Joiner, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("join: Client is required")
	case cfg.Namespace == "":
		return nil, errors.New("join: Namespace is required")
	case cfg.Cluster == "" || cfg.Member == "":
		return nil, errors.New("join: Cluster and Member are required")
	case cfg.Token == nil || cfg.Join == nil:
		return nil, errors.New("join: Token and Join are required")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Interval == 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.TokenTTL < 0 || cfg.Interval < 0 {
		return nil, errors.New("join: TokenTTL and Interval must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Joiner{
		cfg:  cfg,
		log:  cfg.Logger.With("component", "kube-join", "cluster", cfg.Cluster),
		done: map[string]JoinStatus{},
	}, nil
}

// Run publishes and joins every Interval until ctx ends; it returns nil
// then. Errors of one round are logged, and the round is tried again.
func (j *Joiner) Run(ctx context.Context) error {
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		j.round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (j *Joiner) round(ctx context.Context) {
	if err := j.publish(ctx); err != nil {
		j.log.Debug("join token not published", "err", err)
	}
	if err := j.joinAll(ctx); err != nil {
		j.log.Warn("join Secret not read", "err", err)
	}
}

// publish writes a new token when the one published is past half its
// lifetime, as leader only.
func (j *Joiner) publish(ctx context.Context) error {
	if j.cfg.Elector != nil && !j.cfg.Elector.IsLeader() {
		j.published = time.Time{} // a new leader publishes its own
		return nil
	}
	if !j.published.IsZero() && time.Since(j.published) < j.cfg.TokenTTL/2 {
		return nil
	}
	resp, err := j.cfg.Token(j.cfg.TokenTTL)
	if err != nil {
		return err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: JoinTokenSecret, Namespace: j.cfg.Namespace,
			Labels:      map[string]string{"app.kubernetes.io/part-of": "fedmesh"},
			Annotations: map[string]string{AnnotationIssuer: j.cfg.Cluster},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			KeyToken:  []byte(resp.Token),
			KeyExpiry: []byte(resp.Expiry.UTC().Format(time.RFC3339)),
			KeySeeds:  []byte(strings.Join(resp.Seeds, ",")),
		},
	}
	if err := putSecret(ctx, j.cfg.Client, sec); err != nil {
		return err
	}
	j.published = time.Now()
	j.log.Info("join token published", "secret", JoinTokenSecret, "expiry", resp.Expiry)
	return nil
}

// joinAll acts on the join Secret's token when this replica has not
// acted on it yet.
func (j *Joiner) joinAll(ctx context.Context) error {
	sec, err := j.cfg.Client.CoreV1().Secrets(j.cfg.Namespace).Get(ctx, JoinSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	tok := strings.TrimSpace(string(sec.Data[KeyToken]))
	if tok == "" {
		return nil
	}
	d := TokenDigest(tok)
	if st, ok := j.done[d]; ok {
		// Acted on already. The CLI may have written the same token
		// again (a repeated 'fedmesh join'), which drops the recorded
		// outcome: record it again, without joining again.
		if statuses(sec, d)[j.cfg.Member] == st {
			return nil
		}
		return j.annotate(ctx, JoinSecret, st)
	}
	st := JoinStatus{Token: d}
	resp, err := j.cfg.Join(tok)
	switch {
	case err == nil:
		st.Joined, st.Issuer, st.Contacted = true, resp.Issuer, resp.Contacted
		j.log.Info("joined the federation from the join Secret", "secret", JoinSecret, "issuer", resp.Issuer, "contacted", resp.Contacted)
	case errors.Is(err, adminapi.ErrNotReady):
		return nil // tried again next round
	default:
		st.Error = err.Error()
		j.log.Warn("join Secret refused", "secret", JoinSecret, "err", err)
	}
	if err := j.annotate(ctx, JoinSecret, st); err != nil {
		return fmt.Errorf("record the outcome on Secret %s: %w", JoinSecret, err)
	}
	j.done[d] = st
	return nil
}

// annotate records st on the Secret under this replica's key.
func (j *Joiner) annotate(ctx context.Context, name string, st JoinStatus) error {
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{JoinStatusPrefix + j.cfg.Member: string(v)}}})
	if err != nil {
		return err
	}
	_, err = j.cfg.Client.CoreV1().Secrets(j.cfg.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// putSecret creates sec or replaces its labels, annotations and data.
func putSecret(ctx context.Context, c kubernetes.Interface, sec *corev1.Secret) error {
	secrets := c.CoreV1().Secrets(sec.Namespace)
	cur, err := secrets.Get(ctx, sec.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	cur.Labels, cur.Annotations, cur.Data, cur.Type = sec.Labels, sec.Annotations, sec.Data, sec.Type
	_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}
