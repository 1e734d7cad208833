package install

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fedmesh/fedmesh/controlplane/kube"
)

func joinSecret(name string, data map[string]string, annotations map[string]string) *corev1.Secret {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "fedmesh-system", Annotations: annotations}, Data: map[string][]byte{}}
	for k, v := range data {
		sec.Data[k] = []byte(v)
	}
	return sec
}

func joinStatus(t *testing.T, st kube.JoinStatus) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJudgeJoinToken(t *testing.T) {
	now := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	issuer := map[string]string{kube.AnnotationIssuer: "east-1"}
	tests := []struct {
		name string
		sec  *corev1.Secret
		want Status
		// msg is part of the message; a failure's hint names the logs.
		msg string
	}{
		{"absent", nil, Fail, "no Secret fedmesh-system/fedmesh-join-token"},
		{"no token", joinSecret(kube.JoinTokenSecret, map[string]string{kube.KeyExpiry: "2026-12-06T19:00:00Z"}, issuer), Fail, "has no token"},
		{"bad expiry", joinSecret(kube.JoinTokenSecret, map[string]string{kube.KeyToken: "fmjt1.x", kube.KeyExpiry: "tomorrow"}, issuer), Fail, `expiry "tomorrow" is not an RFC 3339 time`},
		{"expired", joinSecret(kube.JoinTokenSecret, map[string]string{kube.KeyToken: "fmjt1.x", kube.KeyExpiry: "2026-12-06T17:59:59Z"}, issuer), Fail, "the join token of east-1 in fedmesh-system/fedmesh-join-token expired at 2026-12-06T17:59:59Z"},
		{"expires now", joinSecret(kube.JoinTokenSecret, map[string]string{kube.KeyToken: "fmjt1.x", kube.KeyExpiry: "2026-12-06T18:00:00Z"}, issuer), Fail, "expired at"},
		{"fresh", joinSecret(kube.JoinTokenSecret, map[string]string{kube.KeyToken: "fmjt1.x", kube.KeyExpiry: "2026-12-06T18:30:00Z"}, issuer), Pass, "the join token of east-1 in fedmesh-system/fedmesh-join-token is valid until 2026-12-06T18:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg, hint := judgeJoinToken(tt.sec, "fedmesh-system", now)
			if got != tt.want || !strings.Contains(msg, tt.msg) {
				t.Errorf("judgeJoinToken = %s %q, want %s with %q", got, msg, tt.want, tt.msg)
			}
			if (got == Fail) != strings.Contains(hint, "kubectl -n fedmesh-system logs statefulset/fedmesh-controlplane") {
				t.Errorf("%s with hint %q: want a hint naming the logs exactly when it fails", got, hint)
			}
		})
	}
}

func TestJudgeJoin(t *testing.T) {
	const tok = "fmjt1.current"
	cur, old := kube.TokenDigest(tok), kube.TokenDigest("fmjt1.earlier")
	ann := func(kv ...string) map[string]string {
		m := map[string]string{kube.AnnotationIssuer: "east-1"}
		for i := 0; i < len(kv); i += 2 {
			m[kube.JoinStatusPrefix+kv[i]] = kv[i+1]
		}
		return m
	}
	data := map[string]string{kube.KeyToken: tok}
	joined := joinStatus(t, kube.JoinStatus{Token: cur, Joined: true, Issuer: "east-1", Contacted: 2})
	refused := joinStatus(t, kube.JoinStatus{Token: cur, Error: "join token expired"})
	tests := []struct {
		name     string
		sec      *corev1.Secret
		want     Status
		msg      string
		hintWant string
	}{
		{"absent", nil, Pass, "no Secret fedmesh-system/fedmesh-join: this cluster was not joined through the API servers", ""},
		{"no token", joinSecret(kube.JoinSecret, nil, ann()), Fail, "has no token", "fedmesh join --context"},
		{"not taken yet", joinSecret(kube.JoinSecret, data, ann()), Fail, "no control plane replica has taken the join token of east-1", "logs statefulset/fedmesh-controlplane"},
		{"outcome of an earlier token only", joinSecret(kube.JoinSecret, data,
			ann("west-1-0", joinStatus(t, kube.JoinStatus{Token: old, Joined: true}))), Fail, "no control plane replica has taken", "logs"},
		{"unreadable outcome", joinSecret(kube.JoinSecret, data, ann("west-1-0", "{not json")), Fail, "no control plane replica has taken", "logs"},
		{"refused", joinSecret(kube.JoinSecret, data, ann("west-1-0", refused)), Fail,
			"the join token of east-1 in fedmesh-system/fedmesh-join was refused by west-1-0: join token expired", "expired, altered or foreign"},
		{"joined", joinSecret(kube.JoinSecret, data, ann("west-1-0", joined, "west-1-1", joined)), Pass, "joined the federation of east-1 (west-1-0, west-1-1)", ""},
		{"joined, one replica refused", joinSecret(kube.JoinSecret, data, ann("west-1-0", joined, "west-1-1", refused)), Pass,
			"joined the federation of east-1 (west-1-0); refused by west-1-1: join token expired", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg, hint := judgeJoin(tt.sec, "fedmesh-system", time.Time{})
			if got != tt.want || !strings.Contains(msg, tt.msg) {
				t.Errorf("judgeJoin = %s %q, want %s with %q", got, msg, tt.want, tt.msg)
			}
			if (tt.hintWant == "" && hint != "") || !strings.Contains(hint, tt.hintWant) {
				t.Errorf("hint %q, want one with %q", hint, tt.hintWant)
			}
		})
	}
}
