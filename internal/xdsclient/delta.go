package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Delta (incremental) ADS, the default. One DeltaAggregatedResources
// stream carries every subscribed type, each a wildcard subscription
// (no names: everything the control plane has for the node). A response
// holds the resources added or changed, each with its own version, and
// the names removed; the client ACKs it with the response's nonce alone
// and NACKs it with the nonce and error_detail, keeping what it had (the
// control plane does not send the refused resources again until they
// change, or until the client announces what it holds on a new stream).
//
// The client remembers, per type, the version of every resource it
// accepted, and announces them on a new stream
// (initial_resource_versions), so a control plane that kept them sends
// only what changed while the client was away, and the names it no
// longer has as removed. A type for which nothing is announced (the
// first stream, or after a restore from the data directory: persisted
// versions are never announced, see persist.go) takes the stream's first
// response as the whole set.
//
// A control plane that does not serve delta (the stream ends with
// Unimplemented before any response) is spoken to in state of the world
// from then on, at once and for the life of the client.

// Protocols, as Status.Protocol names them.
const (
	protocolDelta = "delta"
	protocolSotW  = "sotw"
)

// deltaState is what a delta stream knows of one type.
type deltaState struct {
	// known are the accepted resources' versions, by name.
	known map[string]string
	// replace is set while the stream's next response of the type is
	// the whole set: nothing was announced and nothing came yet.
	replace bool
	// full is the whole set handed to a Handler that takes whole sets
	// (Config.Incremental unset).
	full map[string]proto.Message
	// raw are the accepted resources as received, for the data
	// directory (Config.DataDir set).
	raw map[string]*anypb.Any
}

// fallBack switches to state of the world when err says the control
// plane does not serve delta, and reports whether it did.
func (c *Client) fallBack(err error) bool {
	if status.Code(errors.Unwrap(err)) != codes.Unimplemented && status.Code(err) != codes.Unimplemented {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sotw {
		return false
	}
	c.sotw = true
	c.log.Warn("the control plane does not serve delta xDS; speaking state of the world", "err", err)
	return true
}

// runDeltaStream opens one delta ADS stream and serves it until it
// fails. got reports whether any response arrived.
func (c *Client) runDeltaStream(ctx context.Context, conn *grpc.ClientConn) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return false, fmt.Errorf("open delta ads stream: %w", err)
	}
	subscribe := func(t string, node *corev3.Node) *discoveryv3.DeltaDiscoveryRequest {
		return &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, InitialResourceVersions: c.announce(t), Node: node}
	}
	handle := func(resp *discoveryv3.DeltaDiscoveryResponse) (*discoveryv3.DeltaDiscoveryRequest, bool) {
		req := c.handleDelta(resp)
		return req, req != nil
	}
	return serve(c, stream, subscribe, handle, "delta ads stream established")
}

// announce returns the versions to announce for typeURL on a new stream
// and marks whether its first response replaces the whole set.
func (c *Client) announce(typeURL string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ds := c.delta[typeURL]
	if ds == nil {
		ds = &deltaState{known: map[string]string{}}
		c.delta[typeURL] = ds
	}
	ds.replace = len(ds.known) == 0
	if ds.replace {
		return nil
	}
	return maps.Clone(ds.known)
}

// handleDelta processes one delta response and returns the ACK or NACK
// to send, or nil for a type the client did not ask for.
func (c *Client) handleDelta(resp *discoveryv3.DeltaDiscoveryResponse) *discoveryv3.DeltaDiscoveryRequest {
	t := resp.GetTypeUrl()
	if !c.subscribed(t) {
		return nil
	}
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
	c.handleMu.Lock()
	defer c.handleMu.Unlock()

	c.mu.Lock()
	ds := c.delta[t]
	c.mu.Unlock()
	res, versions, raw, reason, err := decodeDelta(t, resp.GetResources())
	var full map[string]proto.Message
	if err == nil {
		u := Update{TypeURL: t, Version: resp.GetSystemVersionInfo(), Resources: res}
		switch {
		case c.cfg.Incremental && !ds.replace:
			u.Incremental, u.Removed = true, resp.GetRemovedResources()
		case c.cfg.Incremental:
		case ds.replace:
			full = res
		default:
			full = maps.Clone(ds.full)
			for _, name := range resp.GetRemovedResources() {
				delete(full, name)
			}
			maps.Copy(full, res)
			u.Resources = full
		}
		reason, err = c.offer(u)
	}

	var persist func()
	defer func() {
		if persist != nil {
			persist()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		req.ErrorDetail = c.rejectLocked(t, resp.GetNonce(), resp.GetSystemVersionInfo(), reason, err)
		return req
	}
	if ds.replace {
		ds.known, ds.raw = map[string]string{}, nil
		ds.replace = false
	}
	for _, name := range resp.GetRemovedResources() {
		delete(ds.known, name)
		delete(ds.raw, name)
	}
	maps.Copy(ds.known, versions)
	ds.full = full
	if c.cfg.DataDir != "" {
		if ds.raw == nil {
			ds.raw = map[string]*anypb.Any{}
		}
		maps.Copy(ds.raw, raw)
	}
	c.acceptLocked(t, resp.GetNonce(), resp.GetSystemVersionInfo(), len(ds.known), full)
	ts := c.status.Types[t]
	c.log.Debug("accepted xds response", "type", shortType(t), "version", ts.Version,
		"changed", len(res), "removed", len(resp.GetRemovedResources()), "resources", len(ds.known))
	if c.cfg.DataDir != "" {
		version, all := ts.Version, make([]*anypb.Any, 0, len(ds.raw))
		for _, name := range slices.Sorted(maps.Keys(ds.raw)) {
			all = append(all, ds.raw[name])
		}
		persist = func() { c.save(t, version, all) }
	}
	return req
}

// decodeDelta decodes the resources of one delta response like Decode,
// and checks that each one's name is the name it is sent under. It
// returns the decoded resources, their versions and their wire forms by
// name.
func decodeDelta(typeURL string, rs []*discoveryv3.Resource) (res map[string]proto.Message, versions map[string]string, raw map[string]*anypb.Any, reason string, err error) {
	anys := make([]*anypb.Any, len(rs))
	for i, r := range rs {
		if r.GetResource() == nil {
			return nil, nil, nil, "decode", fmt.Errorf("%w: resource %d (%q) of %s has no body", ErrRejected, i, r.GetName(), shortType(typeURL))
		}
		anys[i] = r.GetResource()
	}
	res, reason, err = Decode(typeURL, anys)
	if err != nil {
		return nil, nil, nil, reason, err
	}
	versions = make(map[string]string, len(rs))
	raw = make(map[string]*anypb.Any, len(rs))
	for i, r := range rs {
		name := r.GetName()
		if _, ok := res[name]; !ok {
			return nil, nil, nil, "name", fmt.Errorf("%w: resource %d of %s is sent as %q but named otherwise", ErrRejected, i, shortType(typeURL), r.GetName())
		}
		versions[name], raw[name] = r.GetVersion(), anys[i]
	}
	if len(versions) != len(res) {
		return nil, nil, nil, "duplicate", fmt.Errorf("%w: %s sent under one name twice", ErrRejected, shortType(typeURL))
	}
	return res, versions, raw, "", nil
}
