//go:build race

package proxy_test

// raceEnabled: the race detector allocates on its own, so allocation
// bounds are not checked under it.
const raceEnabled = true
