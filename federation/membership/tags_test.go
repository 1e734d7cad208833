package membership

import (
	"errors"
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fedmesh/fedmesh/topology"
)

func goodTags() map[string]string {
	return map[string]string{
		TagCluster: "east-1", TagRegion: "us-east", TagZone: "a", TagGateway: "127.0.0.11:15443",
		TagCatalog: "https://127.0.0.11:2379", TagProtocolVersion: "1", TagInstanceID: "0123abcd",
	}
}

func TestDecodeTags(t *testing.T) {
	want := MemberInfo{
		Cluster:         "east-1",
		Locality:        topology.Locality{Region: "us-east", Zone: "a", Cluster: "east-1"},
		GatewayAddr:     "127.0.0.11:15443",
		CatalogAddr:     "https://127.0.0.11:2379",
		ProtocolVersion: 1,
		InstanceID:      "0123abcd",
	}
	got, err := DecodeTags(goodTags())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeTags (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(goodTags(), want.Encode()); diff != "" {
		t.Errorf("Encode (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name   string
		edit   func(map[string]string)
		reason string
		tag    string
	}{
		{name: "extra tags ignored", edit: func(m map[string]string) { m["future"] = "x" }},
		{name: "no zone is fine", edit: func(m map[string]string) { m[TagZone] = "" }},
		{name: "host name gateway", edit: func(m map[string]string) { m[TagGateway] = "gw.east-1.example:15443" }},
		{name: "ipv6 catalog", edit: func(m map[string]string) { m[TagCatalog] = "https://[::1]:2379" }},
		{name: "replica", edit: func(m map[string]string) { m[TagReplica] = "fedmesh-controlplane-1" }},
		{name: "bad replica", edit: func(m map[string]string) { m[TagReplica] = "cp.1" }, reason: ReasonBadReplica, tag: TagReplica},
		{name: "empty replica", edit: func(m map[string]string) { m[TagReplica] = "" }, reason: ReasonBadReplica, tag: TagReplica},
		{name: "no cluster", edit: func(m map[string]string) { delete(m, TagCluster) }, reason: ReasonMissingTag, tag: TagCluster},
		{name: "empty cluster", edit: func(m map[string]string) { m[TagCluster] = "" }, reason: ReasonMissingTag, tag: TagCluster},
		{name: "upper case cluster", edit: func(m map[string]string) { m[TagCluster] = "East-1" }, reason: ReasonBadClusterName, tag: TagCluster},
		{name: "no region", edit: func(m map[string]string) { delete(m, TagRegion) }, reason: ReasonMissingTag, tag: TagRegion},
		{name: "no zone tag", edit: func(m map[string]string) { delete(m, TagZone) }, reason: ReasonMissingTag, tag: TagZone},
		{name: "bad zone", edit: func(m map[string]string) { m[TagZone] = "a/b" }, reason: ReasonBadLocality, tag: TagZone},
		{name: "gateway without port", edit: func(m map[string]string) { m[TagGateway] = "127.0.0.1" }, reason: ReasonBadGatewayAddr, tag: TagGateway},
		{name: "gateway port 0", edit: func(m map[string]string) { m[TagGateway] = "127.0.0.1:0" }, reason: ReasonBadGatewayAddr, tag: TagGateway},
		{name: "gateway port too big", edit: func(m map[string]string) { m[TagGateway] = "127.0.0.1:65536" }, reason: ReasonBadGatewayAddr, tag: TagGateway},
		{name: "catalog not a URL", edit: func(m map[string]string) { m[TagCatalog] = "127.0.0.1:2379" }, reason: ReasonBadCatalogAddr, tag: TagCatalog},
		{name: "catalog with path", edit: func(m map[string]string) { m[TagCatalog] = "https://127.0.0.1:2379/v3" }, reason: ReasonBadCatalogAddr, tag: TagCatalog},
		{name: "catalog with user", edit: func(m map[string]string) { m[TagCatalog] = "https://u:p@127.0.0.1:2379" }, reason: ReasonBadCatalogAddr, tag: TagCatalog},
		{name: "no protocol", edit: func(m map[string]string) { delete(m, TagProtocolVersion) }, reason: ReasonMissingTag, tag: TagProtocolVersion},
		{name: "protocol not a number", edit: func(m map[string]string) { m[TagProtocolVersion] = "v1" }, reason: ReasonBadProtocolVersion, tag: TagProtocolVersion},
		{name: "future protocol", edit: func(m map[string]string) { m[TagProtocolVersion] = "2" }, reason: ReasonUnsupportedProtocol, tag: TagProtocolVersion},
		{name: "protocol zero", edit: func(m map[string]string) { m[TagProtocolVersion] = "0" }, reason: ReasonUnsupportedProtocol, tag: TagProtocolVersion},
		{name: "no instance id", edit: func(m map[string]string) { delete(m, TagInstanceID) }, reason: ReasonMissingTag, tag: TagInstanceID},
		{name: "bad instance id", edit: func(m map[string]string) { m[TagInstanceID] = "A B" }, reason: ReasonBadInstanceID, tag: TagInstanceID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tags := goodTags()
			tc.edit(tags)
			_, err := DecodeTags(tags)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("DecodeTags: %v", err)
				}
				return
			}
			var te *TagError
			if !errors.As(err, &te) || !errors.Is(err, ErrBadTags) {
				t.Fatalf("DecodeTags error = %v, want a *TagError wrapping ErrBadTags", err)
			}
			if diff := cmp.Diff([2]string{tc.reason, tc.tag}, [2]string{te.Reason, te.Tag}); diff != "" {
				t.Errorf("reason and tag (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzDecodeTags(f *testing.F) {
	f.Add("east-1", "us-east", "a", "127.0.0.11:15443", "https://127.0.0.11:2379", "1", "0123abcd")
	f.Add("", "", "", "", "", "", "")
	f.Add("x", "r", "", "[::1]:1", "http://[::1]:2379", "2", "i")
	f.Add("x", "r", "z", "host.example:99999", "https://a:1/p?q", "-1", "iid")
	f.Fuzz(func(t *testing.T, cluster, region, zone, gw, catalog, pv, iid string) {
		tags := map[string]string{TagCluster: cluster, TagRegion: region, TagZone: zone, TagGateway: gw,
			TagCatalog: catalog, TagProtocolVersion: pv, TagInstanceID: iid}
		in := maps.Clone(tags)
		info, err := DecodeTags(tags)
		if diff := cmp.Diff(in, tags); diff != "" {
			t.Fatalf("DecodeTags changed its input:\n%s", diff)
		}
		if err != nil {
			var te *TagError
			if !errors.As(err, &te) || te.Reason == "" {
				t.Fatalf("error %v is not a *TagError with a reason", err)
			}
			return
		}
		// What decodes, encodes back to the same tags and decodes again.
		again, err := DecodeTags(info.Encode())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(info, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func BenchmarkDecodeTags(b *testing.B) {
	tags := goodTags()
	for b.Loop() {
		if _, err := DecodeTags(tags); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMemberName(t *testing.T) {
	for _, tc := range []struct {
		name, cluster, replica string
		ok                     bool
	}{
		{name: "east-1", cluster: "east-1", ok: true},
		{name: "east-1.cp-0", cluster: "east-1", replica: "cp-0", ok: true},
		{name: "east-1.", ok: false},
		{name: ".cp-0", ok: false},
		{name: "east-1.cp.0", ok: false},
		{name: "East-1", ok: false},
	} {
		c, r, ok := SplitMemberName(tc.name)
		if c != tc.cluster || r != tc.replica || ok != tc.ok {
			t.Errorf("SplitMemberName(%q) = %q, %q, %t; want %q, %q, %t", tc.name, c, r, ok, tc.cluster, tc.replica, tc.ok)
		}
		if tc.ok && MemberName(c, r) != tc.name {
			t.Errorf("MemberName(%q, %q) = %q, want %q", c, r, MemberName(c, r), tc.name)
		}
	}
}

func FuzzSplitMemberName(f *testing.F) {
	f.Add("east-1")
	f.Add("east-1.cp-0")
	f.Add("a..b")
	f.Fuzz(func(t *testing.T, name string) {
		c, r, ok := SplitMemberName(name)
		if !ok {
			return
		}
		if !IsClusterName(c) || (r != "" && !isLabel(r)) {
			t.Fatalf("SplitMemberName(%q) accepted cluster %q, replica %q", name, c, r)
		}
		if MemberName(c, r) != name {
			t.Fatalf("MemberName(SplitMemberName(%q)) = %q", name, MemberName(c, r))
		}
	})
}
