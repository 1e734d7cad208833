package authz_test

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	"github.com/fedmesh/fedmesh/sidecar/authz"
)

// BenchmarkAuthorize is the per-request cost of authorization with n
// rules shaped as the control plane emits them (a DENY filter and an
// ALLOW filter, each rule naming principals by exact ID and namespace
// regex and paths by prefix, a method and a header), for a request that
// matches only the last ALLOW rule, so every rule is tried.
func BenchmarkAuthorize(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			deny, allow := Policies{}, Policies{}
			for i := 0; i < n; i++ {
				p := Policy(
					perms(AndRules(Method("POST"), Path(Prefix(fmt.Sprintf("/api/v%d/", i))))),
					ids(PrincipalName(Exact(fmt.Sprintf("spiffe://fed.test/ns/web/sa/caller-%d", i))),
						AndIDs(PrincipalName(Regex(fmt.Sprintf(`spiffe://fed\.test/ns/team-%d/sa/[^/]+`, i))), PeerCluster(Exact("east-1")))),
				)
				name := fmt.Sprintf("ns[demo]-policy[p%d]-rule[0]", i)
				if i%2 == 0 {
					deny[name] = p
				} else {
					allow[name] = p
				}
			}
			last := n - 1
			if last%2 == 0 {
				last--
			}
			e := engine(b, rules(rbacv3.RBAC_DENY, deny), rules(rbacv3.RBAC_ALLOW, allow))
			r := &authz.Request{HTTP: true, Principal: fmt.Sprintf("spiffe://fed.test/ns/web/sa/caller-%d", last), PeerCluster: "east-1",
				SNI: "8080.echo.demo.svc.clusterset.local", Method: "POST", Path: fmt.Sprintf("/api/v%d/items?x=1", last),
				Headers: http.Header{"Content-Type": {"application/json"}}}
			if d := e.Authorize(r); !d.Allowed {
				b.Fatalf("request denied: %+v", d)
			}
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				if !e.Authorize(r).Allowed {
					b.Fatal("denied")
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime returns the CPU time (user and system) the process used so far:
// on a shared machine cpu-ns/op moves far less than ns/op, which includes
// the time the process waited for a CPU.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
