package xdsclient

import (
	"fmt"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// The parts of a stream that delta and state of the world share: the
// subscriptions, the receive loop, and the status kept per type.

// adsStream is an open ADS stream, delta or state of the world, as serve
// uses it from one goroutine.
type adsStream[Req, Resp any] interface {
	Send(Req) error
	Recv() (Resp, error)
}

// serve subscribes to every type on stream, the first request carrying
// the node, and answers each response with the request handle returns
// (none when it returns false) until the stream fails. established is
// logged at the first response. got reports whether any response
// arrived.
func serve[Req any, Resp interface{ GetTypeUrl() string }](c *Client, stream adsStream[Req, Resp], subscribe func(typeURL string, node *corev3.Node) Req, handle func(Resp) (Req, bool), established string) (got bool, err error) {
	node, err := c.node()
	if err != nil {
		return false, err
	}
	for _, t := range c.types {
		if err := stream.Send(subscribe(t, node)); err != nil {
			return false, fmt.Errorf("send initial request for %s: %w", t, err)
		}
		node = nil // on the first request only
	}
	// The stream is up once the subscriptions are sent: a control plane
	// that already has every version this client announces answers
	// nothing until something changes, so waiting for a response would
	// report a healthy stream as down. A refusal arrives on Recv and ends
	// the stream.
	c.setConnected(true, nil)
	for {
		resp, err := stream.Recv()
		if err != nil {
			return got, fmt.Errorf("receive: %w", err)
		}
		if !got {
			got = true
			c.log.Info(established)
		}
		req, ok := handle(resp)
		if !ok {
			continue
		}
		if err := stream.Send(req); err != nil {
			return got, fmt.Errorf("send ack for %s: %w", resp.GetTypeUrl(), err)
		}
	}
}

// subscribed reports whether the client asked for typeURL, and counts
// and logs a response of a type it did not ask for.
func (c *Client) subscribed(typeURL string) bool {
	if slices.Contains(c.types, typeURL) {
		return true
	}
	c.responses.WithLabelValues(shortType(typeURL), "ignored", "unsubscribed").Inc()
	c.log.Warn("ignoring response of a type not subscribed", "type", typeURL)
	return false
}

// offer hands u to the Handler and returns the reason and error of a
// refusal.
func (c *Client) offer(u Update) (reason string, err error) {
	if herr := c.cfg.Handler.OnUpdate(u); herr != nil {
		return "rejected", fmt.Errorf("%w: %w", ErrRejected, herr)
	}
	return "", nil
}

// rejectLocked records the refusal of a response of typeURL, counts and
// logs it, and returns the error_detail of its NACK.
func (c *Client) rejectLocked(typeURL, nonce, version, reason string, err error) *statuspb.Status {
	ts := c.status.Types[typeURL]
	ts.Nonce = nonce
	ts.LastError = err.Error()
	c.status.Types[typeURL] = ts
	c.responses.WithLabelValues(shortType(typeURL), "nack", reason).Inc()
	c.log.Warn("rejecting xds response", "type", shortType(typeURL), "version", version, "reason", reason, "err", err)
	return &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
}

// acceptLocked records the acceptance of a response of typeURL that
// leaves the client with n resources, res being the whole set (kept
// unless Config.Incremental is set), and counts it.
func (c *Client) acceptLocked(typeURL, nonce, version string, n int, res map[string]proto.Message) {
	ts := c.status.Types[typeURL]
	ts.Nonce = nonce
	ts.Version = version
	ts.LastError = ""
	ts.Resources = n
	ts.Updated = time.Now()
	ts.Persisted = false
	c.status.Types[typeURL] = ts
	if !c.cfg.Incremental {
		c.resources[typeURL] = res
	}
	c.answered = true
	c.setSourceLocked()
	c.responses.WithLabelValues(shortType(typeURL), "ack", "").Inc()
}
