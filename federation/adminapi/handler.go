package adminapi

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fedmesh/fedmesh/federation/jointoken"
	"github.com/fedmesh/fedmesh/federation/membership"
	"github.com/fedmesh/fedmesh/internal/httpjson"
)

// Federation is what the handler needs of the membership; called from
// request goroutines concurrently. *membership.Membership implements it.
type Federation interface {
	Local() membership.Member
	Members() []membership.Member
	Join(addrs []string) (int, error)
	AdoptKeys(keys [][]byte) error
	LocalKeys() [][]byte
	ListKeys() (membership.KeyReport, error)
	InstallKey(key string) (membership.KeyReport, error)
	UseKey(key string) (membership.KeyReport, error)
	RemoveKey(key string) (membership.KeyReport, error)
	ForceLeave(name string) error
}

var _ Federation = (*membership.Membership)(nil)

// ErrNotReady says the control plane runs no federation yet (the admin
// API is not up): a join or token request may succeed later.
var ErrNotReady = errors.New("the control plane runs no federation yet")

// Issuer is the identity join tokens are signed with: the control plane's
// key and certificate chain (leaf first, then the cluster intermediate),
// and the federation root bundle and trust domain the token carries.
type Issuer struct {
	Signer      crypto.Signer
	Chain       []*x509.Certificate
	RootBundle  []byte
	TrustDomain string
}

// Config configures the handler.
type Config struct {
	// Federation is this control plane's membership. Required.
	Federation Federation
	// Issuer returns the identity to sign tokens with. Nil: creating
	// tokens answers 503.
	Issuer func() (Issuer, error)
	// TrustedRoots returns the federation root certificates this cluster
	// trusts; join tokens must chain to them. Nil: joining answers 503.
	TrustedRoots func() ([]*x509.Certificate, error)
	// Seeds returns the gossip addresses put in new tokens. Default: this
	// member's address and up to four alive peers'.
	Seeds func() []string
	// DefaultTTL is a token's lifetime when the request names none.
	// Default 1h.
	DefaultTTL time.Duration
	// MaxTTL is the longest lifetime a token may be given. Default 24h.
	MaxTTL time.Duration
	// Now tells the time for token issue and expiry; default time.Now.
	Now func() time.Time
	// Logger receives the handler's logs. Default: discard.
	Logger *slog.Logger
	// Registerer registers the handler's metrics. Default: none.
	Registerer prometheus.Registerer
}

// Handler serves the federation admin API under /federation/v1/.
type Handler struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	routes   []string
	rejected *prometheus.CounterVec
}

var _ http.Handler = (*Handler)(nil)

// maxBody bounds request bodies (a token is at most 32 KiB).
const maxBody = 64 << 10

// NewHandler validates cfg and returns the handler.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Federation == nil {
		return nil, errors.New("adminapi: Federation is required")
	}
	if cfg.DefaultTTL == 0 {
		cfg.DefaultTTL = time.Hour
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = 24 * time.Hour
	}
	if cfg.DefaultTTL < 0 || cfg.MaxTTL < 0 || cfg.DefaultTTL > cfg.MaxTTL {
		return nil, fmt.Errorf("adminapi: default TTL %s must be positive and at most max TTL %s", cfg.DefaultTTL, cfg.MaxTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		cfg: cfg,
		log: cfg.Logger.With("component", "federation-admin", "cluster", cfg.Federation.Local().Name),
		mux: http.NewServeMux(),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedmesh_federation_join_token_rejected_total",
			Help: "Join tokens refused by this control plane, by reason (malformed, signature, foreign, expired, signer).",
		}, []string{"reason"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(h.rejected); err != nil {
			return nil, fmt.Errorf("adminapi: register metrics: %w", err)
		}
	}
	h.handle("POST "+PathToken, h.createToken)
	h.handle("POST "+PathJoin, h.join)
	h.handle("GET "+PathKeys, h.listKeys)
	h.handle("POST "+PathKeys, h.keyOp)
	h.handle("GET "+PathMembers, h.members)
	h.handle("POST "+PathMembers+"/{name}/forget", h.forget)
	return h, nil
}

func (h *Handler) handle(pattern string, fn http.HandlerFunc) {
	h.routes = append(h.routes, pattern)
	h.mux.HandleFunc(pattern, fn)
}

// Routes lists the patterns the handler serves, such as
// "POST /federation/v1/token", so that a test can walk every route.
func (h *Handler) Routes() []string { return append([]string(nil), h.routes...) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func writeError(w http.ResponseWriter, status int, err error) {
	httpjson.Write(w, status, ErrorResponse{Error: err.Error()})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("bad request body: trailing data after the JSON object")
	}
	return nil
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ttl := h.cfg.DefaultTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("ttl %q is not a duration like 1h or 30m", req.TTL))
			return
		}
		ttl = d
	}
	resp, status, err := h.token(ttl)
	if err != nil {
		writeError(w, status, err)
		return
	}
	httpjson.Write(w, http.StatusOK, resp)
}

// Token creates a join token valid for ttl, as POST /federation/v1/token
// does: what 'fedmesh join' between Kubernetes clusters publishes. Safe
// for concurrent use.
func (h *Handler) Token(ttl time.Duration) (TokenResponse, error) {
	resp, _, err := h.token(ttl)
	return resp, err
}

// token creates a token and says which HTTP status an error answers.
func (h *Handler) token(ttl time.Duration) (TokenResponse, int, error) {
	if ttl <= 0 || ttl > h.cfg.MaxTTL {
		return TokenResponse{}, http.StatusBadRequest, fmt.Errorf("ttl %s must be positive and at most %s", ttl, h.cfg.MaxTTL)
	}
	if h.cfg.Issuer == nil {
		return TokenResponse{}, http.StatusServiceUnavailable, errors.New("this control plane cannot issue join tokens: it has no signing identity")
	}
	iss, err := h.cfg.Issuer()
	if err != nil {
		return TokenResponse{}, http.StatusServiceUnavailable, fmt.Errorf("signing identity unavailable: %w", err)
	}
	now := h.cfg.Now()
	p := jointoken.Payload{
		TrustDomain: iss.TrustDomain,
		Issuer:      h.cfg.Federation.Local().Name,
		GossipKeys:  h.cfg.Federation.LocalKeys(),
		RootBundle:  iss.RootBundle,
		Seeds:       h.seeds(),
		IssuedAt:    now,
		Expiry:      now.Add(ttl),
	}
	tok, err := jointoken.Create(p, iss.Signer, iss.Chain)
	if err != nil {
		return TokenResponse{}, http.StatusInternalServerError, err
	}
	h.log.Info("join token created", "expiry", p.Expiry, "seeds", p.Seeds)
	return TokenResponse{Token: tok, Expiry: p.Expiry, Seeds: p.Seeds}, http.StatusOK, nil
}

func (h *Handler) seeds() []string {
	if h.cfg.Seeds != nil {
		return h.cfg.Seeds()
	}
	out := []string{h.cfg.Federation.Local().Addr}
	for _, m := range h.cfg.Federation.Members() {
		if len(out) >= 5 {
			break
		}
		if m.Status == membership.StatusAlive && m.Name != h.cfg.Federation.Local().Name {
			out = append(out, m.Addr)
		}
	}
	return out
}

func (h *Handler) join(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	resp, status, err := h.joinToken(req.Token)
	if err != nil {
		writeError(w, status, err)
		return
	}
	httpjson.Write(w, http.StatusOK, resp)
}

// Join verifies token and joins its federation, as POST
// /federation/v1/join does: what a control plane in Kubernetes does with
// a token 'fedmesh join' put in its namespace. Safe for concurrent use.
func (h *Handler) Join(token string) (JoinResponse, error) {
	resp, _, err := h.joinToken(token)
	return resp, err
}

// joinToken joins and says which HTTP status an error answers.
func (h *Handler) joinToken(token string) (JoinResponse, int, error) {
	if h.cfg.TrustedRoots == nil {
		return JoinResponse{}, http.StatusServiceUnavailable, errors.New("this control plane cannot verify join tokens: it has no trusted root")
	}
	roots, err := h.cfg.TrustedRoots()
	if err != nil {
		return JoinResponse{}, http.StatusServiceUnavailable, fmt.Errorf("trusted roots unavailable: %w", err)
	}
	// Verify before touching serf: a bad token joins nothing.
	p, err := jointoken.Verify(token, roots, h.cfg.Now())
	if err != nil {
		reason := jointoken.Reason(err)
		h.rejected.WithLabelValues(reason).Inc()
		h.log.Warn("join token refused", "reason", reason, "err", err)
		status := http.StatusForbidden
		if reason == "malformed" {
			status = http.StatusBadRequest
		}
		return JoinResponse{}, status, err
	}
	if err := h.cfg.Federation.AdoptKeys(p.GossipKeys); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, membership.ErrAlreadyFederated) {
			status = http.StatusConflict
		}
		return JoinResponse{}, status, err
	}
	n, err := h.cfg.Federation.Join(p.Seeds)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, membership.ErrDuplicateName) {
			status = http.StatusConflict
		}
		return JoinResponse{}, status, err
	}
	h.log.Info("joined the federation", "issuer", p.Issuer, "contacted", n)
	return JoinResponse{Issuer: p.Issuer, Contacted: n, TrustDomain: p.TrustDomain}, http.StatusOK, nil
}

func (h *Handler) listKeys(w http.ResponseWriter, _ *http.Request) {
	r, err := h.cfg.Federation.ListKeys()
	writeKeyReport(w, r, err)
}

func (h *Handler) keyOp(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if _, err := membership.ParseKey(req.Key); err != nil && req.Op != "list" {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var rep membership.KeyReport
	var err error
	switch req.Op {
	case "install":
		rep, err = h.cfg.Federation.InstallKey(req.Key)
	case "use":
		rep, err = h.cfg.Federation.UseKey(req.Key)
	case "remove":
		rep, err = h.cfg.Federation.RemoveKey(req.Key)
	case "list":
		rep, err = h.cfg.Federation.ListKeys()
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("op %q: want install, use, remove or list", req.Op))
		return
	}
	if err == nil {
		h.log.Info("gossip keyring changed", "op", req.Op, "members", rep.NumResp)
	}
	writeKeyReport(w, rep, err)
}

func writeKeyReport(w http.ResponseWriter, rep membership.KeyReport, err error) {
	if err != nil {
		httpjson.Write(w, http.StatusBadGateway, KeyResponse{KeyReport: rep, Error: err.Error()})
		return
	}
	httpjson.Write(w, http.StatusOK, KeyResponse{KeyReport: rep})
}

func (h *Handler) members(w http.ResponseWriter, _ *http.Request) {
	var out []MemberView
	for _, m := range h.cfg.Federation.Members() {
		v := MemberView{
			Name: m.Name, Region: m.Locality.Region, Zone: m.Locality.Zone, Addr: m.Addr,
			Status: string(m.Status), Gateway: m.GatewayAddr, Catalog: m.CatalogAddr,
			ProtocolVersion: m.ProtocolVersion,
		}
		if m.HasRTT {
			ms := float64(m.RTT) / float64(time.Millisecond)
			v.RTTMillis = &ms
		}
		out = append(out, v)
	}
	httpjson.Write(w, http.StatusOK, MembersResponse{Members: out})
}

func (h *Handler) forget(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, _, ok := membership.SplitMemberName(name); !ok {
		writeError(w, http.StatusBadRequest, fmt.Errorf("member %q is neither a cluster name (a DNS-1123 label) nor CLUSTER.REPLICA", name))
		return
	}
	err := h.cfg.Federation.ForceLeave(name)
	switch {
	case err == nil:
	case errors.Is(err, membership.ErrMemberAlive):
		writeError(w, http.StatusConflict, err)
		return
	case errors.Is(err, membership.ErrForgetSelf):
		writeError(w, http.StatusBadRequest, err)
		return
	case errors.Is(err, membership.ErrShutdown):
		writeError(w, http.StatusServiceUnavailable, err)
		return
	default:
		writeError(w, http.StatusBadGateway, err)
		return
	}
	h.log.Info("member forgotten", "member", name)
	httpjson.Write(w, http.StatusOK, ForgetResponse{Name: name})
}
