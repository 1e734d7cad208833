// Package adminapi is the federation part of a control plane's admin HTTP
// endpoint (default https://127.0.0.1:15014), which the fedmesh CLI talks
// to, and the client the CLI uses.
//
// The admin port (controlplane.Admin) lets a request reach these routes
// only over mTLS with an operator certificate (`fedmesh ca issue-operator`),
// with a Host naming the admin endpoint, no foreign Origin, and
// Content-Type application/json on POST; it answers 401 without a
// certificate, 403 for a caller who may not call or a foreign Host or
// Origin, 415 for another Content-Type, all as {"error": "..."}. The
// client presents the certificate on every call, Get included:
//
//	files := adminapi.OperatorFiles{CertFile: "op/operator.crt", KeyFile: "op/operator.key", BundleFile: "op/bundle.crt"}
//	cfg, err := files.ClientTLS(time.Time{})
//	c := &adminapi.Client{BaseURL: "https://127.0.0.11:15014", TLS: cfg}
//	resp, err := c.CreateToken(ctx, time.Hour)
//
//	POST /federation/v1/token   {"ttl":"1h"}                  -> {"token","expiry","seeds"}
//	POST /federation/v1/join    {"token":"fmjt1...."}         -> {"issuer","trustDomain","contacted"}
//	GET  /federation/v1/keys                                  -> keyring of every member
//	POST /federation/v1/keys    {"op":"install|use|remove","key":"BASE64"}
//	GET  /federation/v1/members                               -> {"members":[...]}
//	POST /federation/v1/members/{name}/forget                 -> {"name"}
//
// Errors are JSON {"error": "..."}: 400 bad request or malformed token,
// 403 token refused (altered, foreign, expired), 409 duplicate cluster
// name, already federated under another key, or forgetting an alive
// member, 502 when serf could not reach the seeds or the other members,
// or a member failed a key operation, 503 when the control plane lacks
// its signing identity or trusted roots.
//
// Forgetting a member is serf's force-leave (Consul's `force-leave`): a
// control plane that failed and will not come back is marked left on
// every member, and the federation removes its exports and persisted
// imports; without it, a failed peer stays fenced, waiting to return. A
// member that leaves on purpose needs no forgetting.
//
// Joining verifies the token against this cluster's trusted roots before
// anything touches serf; then the membership adopts the token's gossip
// keys (only a member alone may switch keys) and joins the seeds. One
// join makes the full mesh. Refused tokens are counted in
// fedmesh_federation_join_token_rejected_total{reason}.
//
// The control plane mounts the handler on its admin mux:
//
//	h, err := adminapi.NewHandler(adminapi.Config{
//		Federation:   members,
//		Issuer:       func() (adminapi.Issuer, error) { ... cluster key and chain ... },
//		TrustedRoots: func() ([]*x509.Certificate, error) { ... federation root ... },
//		Logger:       logger, Registerer: registry,
//	})
//	mux.Handle("/federation/", h)
package adminapi
