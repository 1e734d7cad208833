package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client calls a running control plane's federation admin API.
type Client struct {
	// BaseURL is the admin endpoint, e.g. DefaultAdminURL.
	BaseURL string
	// HTTP is the client used; nil means one with a 2 minute timeout
	// (key operations wait for every member's answer).
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
	err := c.do(ctx, http.MethodPost, PathToken, req, &resp)
	return resp, err
}

// Join asks the control plane to join the federation of token.
func (c *Client) Join(ctx context.Context, token string) (JoinResponse, error) {
	var resp JoinResponse
	err := c.do(ctx, http.MethodPost, PathJoin, JoinRequest{Token: strings.TrimSpace(token)}, &resp)
	return resp, err
}

// ListKeys returns the keyring of every member.
func (c *Client) ListKeys(ctx context.Context) (KeyResponse, error) {
	var resp KeyResponse
	err := c.do(ctx, http.MethodGet, PathKeys, nil, &resp)
	return resp, err
}

// KeyOp installs, uses or removes a gossip key (base64) on every member.
func (c *Client) KeyOp(ctx context.Context, op, key string) (KeyResponse, error) {
	var resp KeyResponse
	err := c.do(ctx, http.MethodPost, PathKeys, KeyRequest{Op: op, Key: key}, &resp)
	return resp, err
}

// Members lists the federation's valid members.
func (c *Client) Members(ctx context.Context) (MembersResponse, error) {
	var resp MembersResponse
	err := c.do(ctx, http.MethodGet, PathMembers, nil, &resp)
	return resp, err
}

// Forget forgets a failed member for good: every member marks it left and
// the federation removes its exports and persisted imports.
func (c *Client) Forget(ctx context.Context, name string) (ForgetResponse, error) {
	var resp ForgetResponse
	err := c.do(ctx, http.MethodPost, ForgetPath(name), nil, &resp)
	return resp, err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
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
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the control plane at %s (is it running? see --admin): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
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
