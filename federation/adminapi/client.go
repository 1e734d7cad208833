package adminapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client calls a running control plane's admin endpoint: the federation
// admin API, and with Get any other JSON page of it (status, debug pages).
// Every call, Get included, presents the operator certificate of TLS.
type Client struct {
	// BaseURL is the admin endpoint, e.g. DefaultAdminURL. A control
	// plane with a CA serves https and requires an operator certificate
	// for everything but /healthz, /readyz and /metrics; one without
	// serves plain http.
	BaseURL string
	// TLS is the client configuration for an https BaseURL, usually
	// OperatorFiles.ClientTLS. Required for https unless HTTP is set.
	TLS *tls.Config
	// HTTP is the client used; nil means one with a 2 minute timeout
	// (key operations wait for every member's answer) and TLS.
	HTTP *http.Client
}

// APIError is a non-2xx answer of the control plane.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("control plane answered %d: %s", e.Status, e.Message)
}

// CreateToken asks for a join token valid for ttl (0: server default).
func (c *Client) CreateToken(ctx context.Context, ttl time.Duration) (TokenResponse, error) {
	req := TokenRequest{}
	if ttl != 0 {
		req.TTL = ttl.String()
	}
	var resp TokenResponse
	err := c.do(ctx, http.MethodPost, PathToken, req, &resp, apiLimit)
	return resp, err
}

// Join asks the control plane to join the federation of token.
func (c *Client) Join(ctx context.Context, token string) (JoinResponse, error) {
	var resp JoinResponse
	err := c.do(ctx, http.MethodPost, PathJoin, JoinRequest{Token: strings.TrimSpace(token)}, &resp, apiLimit)
	return resp, err
}

// ListKeys returns the keyring of every member.
func (c *Client) ListKeys(ctx context.Context) (KeyResponse, error) {
	var resp KeyResponse
	err := c.do(ctx, http.MethodGet, PathKeys, nil, &resp, apiLimit)
	return resp, err
}

// KeyOp installs, uses or removes a gossip key (base64) on every member.
func (c *Client) KeyOp(ctx context.Context, op, key string) (KeyResponse, error) {
	var resp KeyResponse
	err := c.do(ctx, http.MethodPost, PathKeys, KeyRequest{Op: op, Key: key}, &resp, apiLimit)
	return resp, err
}

// Members lists the federation's valid members.
func (c *Client) Members(ctx context.Context) (MembersResponse, error) {
	var resp MembersResponse
	err := c.do(ctx, http.MethodGet, PathMembers, nil, &resp, apiLimit)
	return resp, err
}

// Forget forgets a failed member for good: every member marks it left and
// the federation removes its exports and persisted imports.
func (c *Client) Forget(ctx context.Context, name string) (ForgetResponse, error) {
	var resp ForgetResponse
	err := c.do(ctx, http.MethodPost, ForgetPath(name), nil, &resp, apiLimit)
	return resp, err
}

// Get fetches path (with its query, e.g. "/debug/exports?cluster=west-1")
// from the admin endpoint and decodes the JSON answer into out. Pages such
// as debug dumps can be large: up to 64 MiB is read.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out, pageLimit)
}

// Most bytes of an answer read: API answers are small, pages (Get) may
// hold a whole catalog.
const (
	apiLimit  = 1 << 20
	pageLimit = 64 << 20
)

// ErrNoOperatorCertificate is returned for an https endpoint when the
// client has no TLS configuration to authenticate with.
var ErrNoOperatorCertificate = errors.New("no operator certificate configured")

func (c *Client) do(ctx context.Context, method, path string, body, out any, limit int64) error {
	hc := c.HTTP
	if hc == nil {
		if c.TLS == nil && strings.HasPrefix(strings.ToLower(c.BaseURL), "https://") {
			return fmt.Errorf("admin endpoint %s: %w", c.BaseURL, ErrNoOperatorCertificate)
		}
		hc = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     c.TLS,
			TLSHandshakeTimeout: 10 * time.Second,
			DisableKeepAlives:   true, // one call per command
		}}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	url := strings.TrimRight(c.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return fmt.Errorf("admin endpoint %q: %w", c.BaseURL, err)
	}
	if body != nil || method != http.MethodGet {
		// The admin refuses state changes without it: browsers cannot
		// send application/json cross-site without a CORS preflight.
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		if isTLSFailure(err) {
			return fmt.Errorf("TLS with the control plane at %s failed (is the operator certificate for this federation? see --operator-dir): %w", c.BaseURL, err)
		}
		return fmt.Errorf("cannot reach the control plane at %s (is it running? see --admin): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		var e ErrorResponse
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			// Key reports carry the report with the error; keep both.
			if out != nil {
				_ = json.Unmarshal(raw, out)
			}
			return &APIError{Status: resp.StatusCode, Message: e.Error}
		}
		return &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(raw))}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("answer of %s is not the expected JSON: %w", url, err)
	}
	return nil
}

// isTLSFailure tells a refused or failed TLS handshake from an
// unreachable endpoint.
func isTLSFailure(err error) bool {
	var (
		alert  tls.AlertError
		verify *tls.CertificateVerificationError
		header tls.RecordHeaderError
		op     *net.OpError
	)
	switch {
	case errors.As(err, &alert), errors.As(err, &verify), errors.As(err, &header):
		return true
	case errors.As(err, &op):
		return op.Op == "remote error" || strings.HasPrefix(op.Err.Error(), "tls:")
	}
	return strings.Contains(err.Error(), "tls:")
}
