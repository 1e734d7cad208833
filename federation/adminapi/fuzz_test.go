package adminapi

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/testpki"
	"github.com/fedmesh/fedmesh/topology"
)

// fuzzRoutes are the POST endpoints whose JSON bodies come from outside.
var fuzzRoutes = []string{PathToken, PathJoin, PathKeys, ForgetPath("west-1")}

// strictDecode decodes body as the handler must: one JSON object, no
// unknown fields, nothing after it.
func strictDecode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

// FuzzRequestBodies sends arbitrary bodies to the admin API's POST
// endpoints of a real (single-member) federation: the handler never
// panics, always answers JSON, names what is wrong in every refusal, and
// succeeds only for a body that is a valid request.
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []struct {
		route uint8
		body  string
	}{
		{0, `{}`}, {0, `{"ttl":"1h"}`}, {0, `{"ttl":"-1h"}`}, {0, `{"ttl":"1000h"}`}, {0, `{"ttl":1}`},
		{0, `{"ttl":"1h","x":1}`}, {0, `{} {}`}, {0, ``}, {0, `ttl=1h`},
		{1, `{"token":""}`}, {1, `{"token":"fmjt1.e30.e30"}`}, {1, `{"token":"` + strings.Repeat("A", 70000) + `"}`},
		{2, `{"op":"list"}`}, {2, `{"op":"install","key":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}`},
		{2, `{"op":"remove","key":"not base64"}`}, {2, `{"op":"explode","key":"MDEyMzQ1Njc4OWFiY2RlZg=="}`},
		{3, `{}`}, {3, `[]`}, {3, `null`},
	} {
		f.Add(seed.route, []byte(seed.body))
	}

	root := testpki.NewRoot(f, "fuzz")
	cluster := root.NewIntermediate(f, "east-1")
	key := testpki.Key(f)
	leaf := cluster.Leaf(f, key, "spiffe://fedmesh.local/fedmesh/cluster/east-1")
	iss := Issuer{Signer: key, Chain: []*x509.Certificate{leaf, cluster.Cert}, RootBundle: root.PEM(), TrustDomain: "fedmesh.local"}
	m, err := membership.New(membership.Config{
		NodeName: "east-1", Locality: topology.Locality{Region: "us-east", Zone: "a"},
		GatewayAddr: "127.0.0.1:15443", CatalogAddr: "https://127.0.0.1:2379",
		BindAddr: "127.0.0.1", Keys: [][]byte{fedKey}, Profile: membership.ProfileLocal,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = m.Shutdown() })
	h, err := NewHandler(Config{
		Federation:   m,
		Issuer:       func() (Issuer, error) { return iss, nil },
		TrustedRoots: func() ([]*x509.Certificate, error) { return []*x509.Certificate{root.Cert}, nil },
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("POST %s %q: Content-Type %q, want application/json", path, body, ct)
		}
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("POST %s %q: answer %q is not a JSON object: %v", path, body, rec.Body.String(), err)
		}
		if rec.Code/100 != 2 {
			if msg, _ := answer["error"].(string); msg == "" {
				t.Fatalf("POST %s %q: %d without an error message: %s", path, body, rec.Code, rec.Body.String())
			}
		}
		switch path {
		case PathToken:
			var tr TokenRequest
			if strictDecode(body, &tr) != nil && rec.Code != http.StatusBadRequest {
				t.Fatalf("POST token %q: %d, want 400 for a body that is not a token request", body, rec.Code)
			}
			if rec.Code == http.StatusOK && answer["token"] == "" {
				t.Fatalf("POST token %q: 200 without a token", body)
			}
		case PathJoin:
			// Nothing here signs a token this federation trusts.
			if rec.Code == http.StatusOK || !slices.Contains([]int{400, 403}, rec.Code) {
				t.Fatalf("POST join %q: %d, want 400 or 403", body, rec.Code)
			}
		case PathKeys:
			var kr KeyRequest
			decErr := strictDecode(body, &kr)
			if decErr != nil && rec.Code != http.StatusBadRequest {
				t.Fatalf("POST keys %q: %d, want 400 for a body that is not a key request", body, rec.Code)
			}
			if rec.Code == http.StatusOK && !slices.Contains([]string{"install", "use", "remove", "list"}, kr.Op) {
				t.Fatalf("POST keys %q: 200 for op %q", body, kr.Op)
			}
		}
	})
}
