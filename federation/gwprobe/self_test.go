package gwprobe

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/fedmesh/fedmesh/federation/proof/prooftest"
	"github.com/fedmesh/fedmesh/gateway/gatewaytest"
	"github.com/fedmesh/fedmesh/internal/identity"
)

// gatewayID is the identity of a gateway's own SVID.
const gatewayID = "spiffe://" + prooftest.TrustDomain + "/ns/fedmesh-system/sa/fedmesh-gateway"

// runSelfProber is runProber presenting cert in probes of gateways
// themselves.
func runSelfProber(t *testing.T, cert *tls.Certificate) *Prober {
	t.Helper()
	return startProber(t, Config{
		Bundle:      identity.StaticBundle(prooftest.Default(t).Bundle()),
		Certificate: identity.StaticCert(cert),
		Interval:    20 * time.Millisecond,
		Timeout:     2 * time.Second,
	}, nil)
}

// exportsNothing starts c01's data plane with no route and, unless
// idCA is "", a gateway SVID issued by idCA's cluster CA.
func exportsNothing(t *testing.T, idCA string) *gatewaytest.DataPlane {
	t.Helper()
	d := startDataPlane(t, "c01")
	d.Unroute(t)
	if idCA != "" {
		pki := prooftest.Default(t)
		cert := pki.Cert(t, idCA, gatewayID)
		d.SetIdentity(t, &cert, pki.Bundle())
	}
	return d
}

// TestProbeGatewayItself: a peer that exports nothing is probed at its
// gateway, which answers with its own SVID and accepts this control
// plane's; when the gateway dies the probes go unanswered, as for a peer
// probed through a service.
func TestProbeGatewayItself(t *testing.T) {
	pki := prooftest.Default(t)
	d := exportsNothing(t, "c01")
	cp := pki.Cert(t, "c02", prooftest.ControlPlaneID("c02"))
	p := runSelfProber(t, &cp)
	p.SetTargets(map[string]Target{"c01": {Gateway: d.Gateway()}})
	r := waitResult(t, p, "c01", "a probe of the gateway itself succeeds", succeeded)
	if !r.Self {
		t.Errorf("result %+v: want Self", r)
	}
	if n := count(t, p, "c01", ResultOK); n < 1 {
		t.Errorf("probe_total{result=ok} = %v", n)
	}
	d.StopGateway()
	r = waitResult(t, p, "c01", "probes unanswered", failedTimes(3, ResultUnreachable))
	if r.Unanswered < 3 {
		t.Errorf("result %+v: want 3 unanswered", r)
	}
}

func TestProbeGatewayItselfRefused(t *testing.T) {
	pki := prooftest.Default(t)
	cp := pki.Cert(t, "c02", prooftest.ControlPlaneID("c02"))
	for _, tt := range []struct {
		name string
		// idCA issues the gateway's SVID; "" gives it none.
		idCA string
		// prober is the certificate the probe presents.
		prober    tls.Certificate
		want      string
		wantError string
	}{
		{name: "gateway without an SVID yet", prober: cp, want: ResultRefused},
		{name: "gateway of another cluster", idCA: "c03", prober: cp, want: ResultBadIdentity, wantError: `not by the CA of cluster "c01"`},
		{name: "prober is a workload", idCA: "c01", prober: pki.Cert(t, "c02", "spiffe://"+prooftest.TrustDomain+"/ns/demo/sa/client"), want: ResultRefused},
		{name: "prober of another root", idCA: "c01", prober: prooftest.New(t).Cert(t, "c02", prooftest.ControlPlaneID("c02")), want: ResultRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := exportsNothing(t, tt.idCA)
			p := runSelfProber(t, &tt.prober)
			p.SetTargets(map[string]Target{"c01": {Gateway: d.Gateway()}})
			r := waitResult(t, p, "c01", "probes fail", failedTimes(3, tt.want))
			if r.Unanswered != 0 {
				t.Errorf("result %+v: the gateway answered, want 0 unanswered", r)
			}
			if !strings.Contains(r.LastError, tt.wantError) {
				t.Errorf("last error %q, want it to say %q", r.LastError, tt.wantError)
			}
		})
	}
}

// TestSetTargetsSelf: with a certificate, a peer without a service is
// probed at its gateway; a peer that comes to export a service keeps its
// result and is then probed through the service.
func TestSetTargetsSelf(t *testing.T) {
	pki := prooftest.Default(t)
	cp := pki.Cert(t, "c02", prooftest.ControlPlaneID("c02"))
	p, err := New(Config{Bundle: identity.StaticBundle(pki.Bundle()), Certificate: identity.StaticCert(&cp)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.SetTargets(map[string]Target{"b": {Gateway: "127.0.0.1:2"}, "c": {}})
	r, ok := p.Result("b")
	if !ok || !r.Self {
		t.Fatalf("b: %+v %v, want probed at its gateway", r, ok)
	}
	if _, ok := p.Result("c"); ok {
		t.Error("c probed without a gateway")
	}
	p.SetTargets(map[string]Target{"b": {Gateway: "127.0.0.1:2", Services: []Service{{SNI: "8080.echo.demo.svc.clusterset.local"}}}})
	if r2, ok := p.Result("b"); !ok || r2.Self || !r2.Since.Equal(r.Since) {
		t.Errorf("b: %+v %v, want probed through its service since %v", r2, ok, r.Since)
	}
}
