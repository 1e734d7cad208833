package quota_test

import (
	"fmt"

	"github.com/fedmesh/fedmesh/controlplane/quota"
)

func ExampleSplit() {
	shares := quota.Split(600, []quota.Demand{{ID: "east-1", Requests: 450}, {ID: "west-1", Requests: 50}})
	fmt.Println(shares)
	// Output: [{east-1 480} {west-1 120}]
}
