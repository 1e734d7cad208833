package kube

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/fedmesh/fedmesh/federation/adminapi"
)

// TestJoinerRounds drives a Joiner one round at a time: its token is
// published once per half life; a token to join with is retried while
// the control plane is not ready, joined once, and its outcome recorded;
// a new token is acted on again, a refused one recorded with its reason.
func TestJoinerRounds(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	var tokens, joins []string
	joinErr := adminapi.ErrNotReady
	j, err := NewJoiner(JoinConfig{
		Client: client, Namespace: "fedmesh-system", Cluster: "west-1", Member: "west-1.cp-0",
		Token: func(ttl time.Duration) (adminapi.TokenResponse, error) {
			tokens = append(tokens, ttl.String())
			return adminapi.TokenResponse{Token: "fmjt1.west", Expiry: time.Now().Add(ttl), Seeds: []string{"127.0.0.1:7946"}}, nil
		},
		Join: func(token string) (adminapi.JoinResponse, error) {
			joins = append(joins, token)
			if joinErr != nil {
				return adminapi.JoinResponse{}, joinErr
			}
			return adminapi.JoinResponse{Issuer: "east-1", Contacted: 1}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	secrets := client.CoreV1().Secrets("fedmesh-system")
	status := func() (JoinStatus, bool) {
		t.Helper()
		s, err := secrets.Get(ctx, JoinSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, ok := s.Annotations[JoinStatusPrefix+"west-1.cp-0"]
		var st JoinStatus
		if ok {
			if err := json.Unmarshal([]byte(v), &st); err != nil {
				t.Fatal(err)
			}
		}
		return st, ok
	}

	j.round(ctx) // publishes; nothing to join
	pub, err := secrets.Get(ctx, JoinTokenSecret, metav1.GetOptions{})
	if err != nil || string(pub.Data[KeyToken]) != "fmjt1.west" || pub.Annotations[AnnotationIssuer] != "west-1" {
		t.Fatalf("published %+v (%v)", pub, err)
	}
	if _, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: JoinSecret},
		Data:       map[string][]byte{KeyToken: []byte("fmjt1.east")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	j.round(ctx) // not ready: nothing recorded, tried again
	if _, ok := status(); ok {
		t.Error("an outcome was recorded while the control plane was not ready")
	}
	joinErr = nil
	j.round(ctx)
	j.round(ctx) // the same token: not joined again
	if st, ok := status(); !ok || !st.Joined || st.Issuer != "east-1" || st.Token != TokenDigest("fmjt1.east") {
		t.Errorf("status %+v, %t; want joined through east-1", st, ok)
	}
	if len(joins) != 2 {
		t.Errorf("joined %d times (%v), want 2: once not ready, once for real", len(joins), joins)
	}
	if len(tokens) != 1 {
		t.Errorf("published %d tokens within the first half life, want 1", len(tokens))
	}

	// 'fedmesh join' again with the same token drops the annotations:
	// the outcome is recorded again, without joining again.
	s, _ := secrets.Get(ctx, JoinSecret, metav1.GetOptions{})
	s.Annotations = nil
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	j.round(ctx)
	if st, ok := status(); !ok || !st.Joined {
		t.Errorf("after the same token again: status %+v, %t; want joined recorded again", st, ok)
	}
	if len(joins) != 2 {
		t.Errorf("the same token again joined again (%d joins)", len(joins))
	}

	// A new token that is refused: recorded with the reason.
	s, _ = secrets.Get(ctx, JoinSecret, metav1.GetOptions{})
	s.Data[KeyToken] = []byte("fmjt1.altered")
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	joinErr = errors.New("join token signature does not match")
	j.round(ctx)
	if st, _ := status(); st.Joined || st.Error != joinErr.Error() || st.Token != TokenDigest("fmjt1.altered") {
		t.Errorf("status %+v, want the refusal", st)
	}
}

func TestNewJoinerConfig(t *testing.T) {
	ok := JoinConfig{Client: fake.NewClientset(), Namespace: "ns", Cluster: "c", Member: "c",
		Token: func(time.Duration) (adminapi.TokenResponse, error) { return adminapi.TokenResponse{}, nil },
		Join:  func(string) (adminapi.JoinResponse, error) { return adminapi.JoinResponse{}, nil }}
	for name, mod := range map[string]func(*JoinConfig){
		"no client":    func(c *JoinConfig) { c.Client = nil },
		"no namespace": func(c *JoinConfig) { c.Namespace = "" },
		"no member":    func(c *JoinConfig) { c.Member = "" },
		"no join":      func(c *JoinConfig) { c.Join = nil },
		"negative ttl": func(c *JoinConfig) { c.TokenTTL = -time.Second },
	} {
		c := ok
		mod(&c)
		if _, err := NewJoiner(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewJoiner(ok); err != nil {
		t.Errorf("good config: %v", err)
	}
}
