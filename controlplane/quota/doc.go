// Package quota splits a clusterset-wide quota ("N requests per interval
// across every cluster") into shares, with no central rate-limit service:
// every control plane runs the same pure functions on the same replicated
// inputs and gets the same shares, so no leader is needed.
//
// The data that flows through it:
//
//  1. Each server sidecar counts, per quota, the requests it admitted and
//     refused, and reports them to its control plane (LRS load reports).
//  2. Each control plane sums its sidecars' reports into its cluster's
//     recent demand per quota (a rate: admitted + refused per interval)
//     and publishes it, with the share it holds, beside its exports;
//     peers replicate it as they replicate exports.
//  3. Every control plane splits the quota among the live (not fenced)
//     clusters that publish demand for it, in proportion to demand with a
//     floor (Split, Floor), and then splits its own cluster's share among
//     its own sidecars by their demand, with the same rules. The sidecars
//     get their share as a token bucket in xDS.
//
// Split is pure and deterministic: the result depends only on the set of
// (ID, demand) pairs, never on their order; the shares are integers that
// add up to exactly the quota (never more), and each participant gets at
// least the floor, a quarter of an equal share.
//
//	shares := quota.Split(600, []quota.Demand{{ID: "east-1", Requests: 450}, {ID: "west-1", Requests: 50}})
//	// [{east-1 480} {west-1 120}]: floor 75 each, the other 450 split 9:1
package quota
