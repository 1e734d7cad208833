package jointoken

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/internal/testpki"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testPKI is a throwaway federation: a root, a cluster intermediate and the
// control plane's signing leaf, valid around testNow.
type testPKI struct {
	root    *x509.Certificate
	rootPEM []byte
	inter   *testpki.CA
	leaf    *x509.Certificate
	leafKey crypto.Signer
}

func newPKI(t testing.TB, name string, leafKey crypto.Signer) *testPKI {
	t.Helper()
	root := testpki.NewRootAt(t, name, testNow)
	p := &testPKI{root: root.Cert, rootPEM: root.PEM(), inter: root.NewIntermediate(t, name+" east-1")}
	if leafKey == nil {
		leafKey = testpki.Key(t)
	}
	p.leafKey = leafKey
	p.leaf = p.issueLeaf(t, "/fedmesh/cluster/east-1", leafKey)
	return p
}

// issueLeaf signs a leaf for leafKey with the SPIFFE ID path of
// trust domain fedmesh.local, under the intermediate.
func (p *testPKI) issueLeaf(t testing.TB, idPath string, leafKey crypto.Signer) *x509.Certificate {
	t.Helper()
	return p.inter.Leaf(t, leafKey, "spiffe://fedmesh.local"+idPath)
}

func (p *testPKI) chain() []*x509.Certificate { return []*x509.Certificate{p.leaf, p.inter.Cert} }

func testPayload(p *testPKI) Payload {
	return Payload{
		TrustDomain: "fedmesh.local",
		Issuer:      "east-1",
		GossipKeys:  [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		RootBundle:  p.rootPEM,
		Seeds:       []string{"127.0.0.11:7946", "127.0.0.12:7946"},
		IssuedAt:    testNow,
		Expiry:      testNow.Add(time.Hour),
	}
}

func mustCreate(t testing.TB, p Payload, signer crypto.Signer, chain []*x509.Certificate) string {
	t.Helper()
	tok, err := Create(p, signer, chain)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestCreateVerifyRoundTrip(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{
		{name: "ecdsa", key: nil},
		{name: "rsa", key: rsaKey},
		{name: "ed25519", key: edKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pki := newPKI(t, "fed", tc.key)
			want := testPayload(pki)
			tok := mustCreate(t, want, pki.leafKey, pki.chain())
			if !strings.HasPrefix(tok, Prefix) {
				t.Fatalf("token %q lacks prefix %q", tok[:10], Prefix)
			}
			got, err := Verify(" "+tok+"\n", []*x509.Certificate{pki.root}, testNow.Add(time.Minute))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want.Version = Version
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
		})
	}
}

// reencode rewrites a token's envelope, for tampering.
func reencode(t testing.TB, tok string, edit func(*envelope)) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, Prefix))
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	edit(&env)
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(b)
}

func TestVerifyRefuses(t *testing.T) {
	pki := newPKI(t, "fed", nil)
	other := newPKI(t, "other", nil)
	good := mustCreate(t, testPayload(pki), pki.leafKey, pki.chain())
	trusted := []*x509.Certificate{pki.root}

	foreignBundle := testPayload(pki)
	foreignBundle.RootBundle = other.rootPEM
	// A workload's SVID chains to the same root as a control plane's.
	workloadKey := testpki.Key(t)
	workloadChain := []*x509.Certificate{pki.issueLeaf(t, "/ns/demo/sa/default", workloadKey), pki.inter.Cert}
	// The control plane of west-1 signing a token that claims east-1.
	westKey := testpki.Key(t)
	westChain := []*x509.Certificate{pki.issueLeaf(t, "/fedmesh/cluster/west-1", westKey), pki.inter.Cert}
	otherDomain := testPayload(pki)
	otherDomain.TrustDomain = "other.local"
	// A leaf signed directly by the intermediate key without a chain to
	// the root: the chain is cut short.
	for _, tc := range []struct {
		name    string
		token   string
		now     time.Time
		want    error
		wantMsg string
	}{
		{name: "expired", token: good, now: testNow.Add(2 * time.Hour), want: ErrTokenExpired, wantMsg: "expired at 2026-03-01T13:00:00Z"},
		{name: "expired at the second", token: good, now: testNow.Add(time.Hour), want: ErrTokenExpired},
		{name: "issuer certificate expired", token: good, now: testNow.Add(48 * time.Hour), want: ErrTokenExpired, wantMsg: "issuer's certificate"},
		{name: "altered seed", token: reencode(t, good, func(e *envelope) {
			e.Payload = []byte(strings.Replace(string(e.Payload), "127.0.0.12", "127.0.0.66", 1))
		}), now: testNow, want: ErrTokenSignature},
		{name: "altered expiry", token: reencode(t, good, func(e *envelope) {
			e.Payload = []byte(strings.Replace(string(e.Payload), "2026-03-01T13:00:00Z", "2027-03-01T13:00:00Z", 1))
		}), now: testNow, want: ErrTokenSignature},
		{name: "flipped signature", token: reencode(t, good, func(e *envelope) { e.Sig[len(e.Sig)/2] ^= 1 }), now: testNow, want: ErrTokenSignature},
		{name: "foreign federation", token: mustCreate(t, testPayload(other), other.leafKey, other.chain()), now: testNow, want: ErrTokenForeign},
		{name: "chain swapped for another federation's", token: reencode(t, good, func(e *envelope) {
			e.Chain = [][]byte{other.leaf.Raw, other.inter.Cert.Raw}
		}), now: testNow, want: ErrTokenForeign},
		{name: "intermediate missing", token: reencode(t, good, func(e *envelope) { e.Chain = e.Chain[:1] }), now: testNow, want: ErrTokenForeign},
		{name: "root bundle of another federation", token: mustCreate(t, foreignBundle, pki.leafKey, pki.chain()), now: testNow, want: ErrTokenForeign, wantMsg: "does not trust"},
		{name: "signed by a workload", token: mustCreate(t, testPayload(pki), workloadKey, workloadChain), now: testNow, want: ErrTokenSigner, wantMsg: "not a control plane"},
		{name: "signed by another cluster's control plane", token: mustCreate(t, testPayload(pki), westKey, westChain), now: testNow, want: ErrTokenSigner, wantMsg: `names cluster "east-1"`},
		{name: "payload names another trust domain", token: mustCreate(t, otherDomain, pki.leafKey, pki.chain()), now: testNow, want: ErrTokenSigner, wantMsg: `trust domain "other.local"`},
		{name: "empty", token: "", now: testNow, want: ErrTokenMalformed},
		{name: "wrong prefix", token: "abc." + strings.TrimPrefix(good, Prefix), now: testNow, want: ErrTokenMalformed},
		{name: "truncated", token: good[:len(good)/2], now: testNow, want: ErrTokenMalformed},
		{name: "not base64", token: Prefix + "!!!", now: testNow, want: ErrTokenMalformed},
		{name: "unknown payload field", token: reencode(t, good, func(e *envelope) {
			e.Payload = []byte(strings.Replace(string(e.Payload), `{"v":1`, `{"x":1,"v":1`, 1))
		}), now: testNow, want: ErrTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Verify(tc.token, trusted, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, %v; want an error wrapping %v", p, err, tc.want)
			}
			if p != nil {
				t.Errorf("Verify returned a payload with an error")
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
			if got := Reason(err); got == "other" {
				t.Errorf("Reason(%v) = other", err)
			}
		})
	}
}

func TestCreateRefuses(t *testing.T) {
	pki := newPKI(t, "fed", nil)
	for _, tc := range []struct {
		name   string
		edit   func(*Payload)
		signer crypto.Signer
		want   string
	}{
		{name: "short key", edit: func(p *Payload) { p.GossipKeys = [][]byte{[]byte("short")} }, want: "gossip key 0"},
		{name: "no seeds", edit: func(p *Payload) { p.Seeds = nil }, want: "seed"},
		{name: "bad seed", edit: func(p *Payload) { p.Seeds = []string{"nowhere"} }, want: `seed "nowhere"`},
		{name: "no expiry", edit: func(p *Payload) { p.Expiry = time.Time{} }, want: "expiry"},
		{name: "no roots", edit: func(p *Payload) { p.RootBundle = nil }, want: "root bundle"},
		{name: "leaf in bundle", edit: func(p *Payload) {
			p.RootBundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pki.leaf.Raw})
		}, want: "not a CA"},
		{name: "signer not the leaf", edit: func(*Payload) {}, signer: testpki.Key(t), want: "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPayload(pki)
			tc.edit(&p)
			signer := tc.signer
			if signer == nil {
				signer = pki.leafKey
			}
			_, err := Create(p, signer, pki.chain())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	pki := newPKI(f, "fed", nil)
	good := mustCreate(f, testPayload(pki), pki.leafKey, pki.chain())
	for _, s := range []string{good, "", Prefix, Prefix + "e30", good[:len(good)-3], strings.ToUpper(good),
		Prefix + base64.RawURLEncoding.EncodeToString([]byte(`{"p":"e30=","c":[],"s":"AA=="}`))} {
		f.Add(s)
	}
	roots := []*x509.Certificate{pki.root}
	f.Fuzz(func(t *testing.T, tok string) {
		d, err := Decode(tok)
		if err != nil {
			if !errors.Is(err, ErrTokenMalformed) {
				t.Fatalf("Decode error %v does not wrap ErrTokenMalformed", err)
			}
			return
		}
		if len(d.Chain) == 0 {
			t.Fatal("decoded a token without a chain")
		}
		p, err := Verify(tok, roots, testNow)
		if err == nil && tok != good && strings.TrimSpace(tok) != good {
			// Anything verifying must carry the good payload.
			if p.Issuer != "east-1" {
				t.Fatalf("forged token verified: %+v", p)
			}
		}
		if err != nil && Reason(err) == "other" {
			t.Fatalf("Verify error %v has no reason", err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	pki := newPKI(b, "fed", nil)
	tok := mustCreate(b, testPayload(pki), pki.leafKey, pki.chain())
	roots := []*x509.Certificate{pki.root}
	for b.Loop() {
		if _, err := Verify(tok, roots, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
