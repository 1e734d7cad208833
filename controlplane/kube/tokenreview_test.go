package kube

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestParseServiceAccountUser(t *testing.T) {
	tests := []struct {
		name, user string
		wantNS     string
		wantSA     string
		wantOK     bool
	}{
		{name: "service account", user: "system:serviceaccount:demo:echo", wantNS: "demo", wantSA: "echo", wantOK: true},
		{name: "user", user: "alice"},
		{name: "node", user: "system:node:n1"},
		{name: "no name", user: "system:serviceaccount:demo:"},
		{name: "no namespace", user: "system:serviceaccount::echo"},
		{name: "extra colon", user: "system:serviceaccount:demo:echo:x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns, sa, ok := ParseServiceAccountUser(tc.user)
			if d := cmp.Diff([]any{tc.wantNS, tc.wantSA, tc.wantOK}, []any{ns, sa, ok}); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func FuzzParseServiceAccountUser(f *testing.F) {
	for _, s := range []string{"system:serviceaccount:demo:echo", "", "system:serviceaccount:", "system:serviceaccount:a:b:c", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		ns, sa, ok := ParseServiceAccountUser(user)
		if !ok {
			return
		}
		if ns == "" || sa == "" {
			t.Fatalf("%q parsed to empty parts", user)
		}
		if got := "system:serviceaccount:" + ns + ":" + sa; got != user {
			t.Fatalf("%q parsed to %s/%s, which renders as %q", user, ns, sa, got)
		}
	})
}

// TestTokenReviewerStatus covers the answers of the TokenReview API that a
// real API server gives rarely (the integration test covers the others).
func TestTokenReviewerStatus(t *testing.T) {
	tests := []struct {
		name    string
		status  authnv1.TokenReviewStatus
		wantID  string
		wantWL  string
		wantErr error
	}{
		{name: "pod-bound token", status: authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{
			Username: "system:serviceaccount:demo:echo", Extra: map[string]authnv1.ExtraValue{podNameExtra: {"echo-1"}},
		}}, wantID: "demo/echo", wantWL: "echo-1"},
		{name: "not a service account", status: authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "alice"}}, wantErr: ErrUnauthenticated},
		{name: "refused", status: authnv1.TokenReviewStatus{Error: "token expired"}, wantErr: ErrUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewSimpleClientset()
			var audiences []string
			cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
				audiences = tr.Spec.Audiences
				tr = tr.DeepCopy()
				tr.Status = tc.status
				return true, tr, nil
			})
			r, err := NewTokenReviewer(cs)
			if err != nil {
				t.Fatal(err)
			}
			ns, sa, wl, err := r.Verify("tok")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (ns+"/"+sa != tc.wantID || wl != tc.wantWL) {
				t.Errorf("got %s/%s workload %q, want %s workload %q", ns, sa, wl, tc.wantID, tc.wantWL)
			}
			if d := cmp.Diff([]string{DefaultAudience}, audiences); d != "" {
				t.Errorf("audiences (-want +got):\n%s", d)
			}
		})
	}
	if _, _, err := (&TokenReviewer{client: fake.NewSimpleClientset()}).Authenticate(context.Background(), ""); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("empty token: %v", err)
	}
}
