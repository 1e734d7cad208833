package adminapi

import (
	"net/url"
	"time"

	"github.com/fedmesh/fedmesh/federation/membership"
)

// Paths of the federation admin API.
const (
	PathToken   = "/federation/v1/token"
	PathJoin    = "/federation/v1/join"
	PathKeys    = "/federation/v1/keys"
	PathMembers = "/federation/v1/members"
)

// ForgetPath is the path that forgets member name:
// POST /federation/v1/members/{name}/forget.
func ForgetPath(name string) string { return PathMembers + "/" + url.PathEscape(name) + "/forget" }

// DefaultAdminURL is the control plane's admin endpoint on this machine.
// A control plane with a CA (--ca-dir) serves it over TLS.
const DefaultAdminURL = "https://127.0.0.1:15014"

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// TokenRequest asks for a join token. TTL is a Go duration ("1h");
// empty means the server's default.
type TokenRequest struct {
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse carries a new join token.
type TokenResponse struct {
	Token  string    `json:"token"`
	Expiry time.Time `json:"expiry"`
	Seeds  []string  `json:"seeds"`
}

// JoinRequest asks the control plane to join the federation of a token.
type JoinRequest struct {
	Token string `json:"token"`
}

// JoinResponse reports a successful join.
type JoinResponse struct {
	Issuer      string `json:"issuer"`
	TrustDomain string `json:"trustDomain"`
	Contacted   int    `json:"contacted"`
}

// KeyRequest changes the federation's gossip keyring: Op is install,
// use, remove or list; Key is base64.
type KeyRequest struct {
	Op  string `json:"op"`
	Key string `json:"key,omitempty"`
}

// KeyResponse is a keyring report; Error is set when some member failed.
type KeyResponse struct {
	membership.KeyReport
	Error string `json:"error,omitempty"`
}

// MemberView is one member as the API shows it.
type MemberView struct {
	Name            string   `json:"name"`
	Region          string   `json:"region"`
	Zone            string   `json:"zone,omitempty"`
	Addr            string   `json:"addr"`
	Status          string   `json:"status"`
	Gateway         string   `json:"gateway"`
	Catalog         string   `json:"catalog"`
	ProtocolVersion int      `json:"protocolVersion"`
	RTTMillis       *float64 `json:"rttMillis,omitempty"`
}

// ForgetResponse reports a member forgotten for good.
type ForgetResponse struct {
	Name string `json:"name"`
}

// MembersResponse lists the valid members.
type MembersResponse struct {
	Members []MemberView `json:"members"`
}
