// Package membership is a control plane's place in the federation: one
// serf member per cluster control plane, gossiping over an encrypted
// keyring, with failure detection, network coordinates (RTT) and a rejoin
// loop so that no partition leaves a permanent split.
//
// # What flows through it
//
// Each member announces tags (see MemberInfo and DecodeTags): the cluster
// name (also the serf member name), region, zone, east-west gateway
// address, catalog (etcd client) URL, federation protocol version and a
// random instance id. Members() returns the valid members with their
// status (alive, leaving, left, failed) and an RTT estimated from serf's
// network coordinates. A member whose tags are missing, invalid or of an
// unknown protocol version is left out, logged with the reason and counted
// in fedmesh_federation_members_ignored_total{reason}. Subscribe wakes the
// replication layer on every change.
//
// Valid tags prove nothing: anyone with the gossip key can announce them.
// Package federation trusts a member only after it proves the control
// plane identity of its cluster (package proof).
//
// # Duplicate cluster names
//
// Cluster names are unique. A serf merge delegate refuses gossip in which
// a second member claims the name of a live member from another address
// with another instance id: the newcomer's Join fails with
// ErrDuplicateName, nothing is merged on either side, and the refusal is
// counted in fedmesh_federation_join_refused_total{reason="duplicate_name"}.
// A restart (same address, or the old instance already failed or left)
// is not a duplicate.
//
// # Keys
//
// Gossip is always encrypted and verified: New starts from the keyring
// file (serf's format, a JSON list of base64 keys, primary first), else
// Config.Keys, else a fresh random key (a federation of one). A node
// without the federation's key, or speaking plaintext, cannot join.
// InstallKey, UseKey, RemoveKey and ListKeys run serf's key manager across
// all members (rotation: install new, use new, remove old). AdoptKeys
// switches a lone member to the keys of a join token before it joins.
//
// # Timings
//
// Profiles build on memberlist's presets: ProfileWAN (DefaultWANConfig,
// the default for real federations; failed members kept 24h), ProfileLAN
// (DefaultLANConfig; kept 1h), ProfileLocal (DefaultLocalConfig with 500ms
// probes and 5s push-pull; kept 30s; for local mode and tests).
// ReconnectTimeout, TombstoneTimeout and ReconnectInterval override them.
//
// # Rejoin after long partitions
//
// serf retries a failed member until ReconnectTimeout, then reaps it and
// forgets it. The membership remembers every member it saw alive
// (KnownMembers: in memory, a file, or the control plane's etcd) and,
// every ReconnectInterval, joins the known addresses of members that are
// not alive, until ForgetAfter. A member that left on purpose is
// forgotten at once. With SnapshotPath set, serf's snapshot also rejoins
// the last members after a restart.
//
// # Leaving and forgetting
//
// Leave tells every member that this control plane leaves on purpose: they
// mark it left rather than failed, stop retrying it, and the federation
// drops its exports. A member that failed stays failed (and is retried)
// until it comes back; ForceLeave forgets one for good, as Consul's
// force-leave does with serf's RemoveFailedNode: every member marks it
// left. Forgotten lists the members forgotten on this control plane,
// also those serf no longer knew, until they join again. Alive members
// and this control plane itself cannot be forgotten (ErrMemberAlive,
// ErrForgetSelf).
//
// # Example
//
//	m, err := membership.New(membership.Config{
//		NodeName:    "east-1",
//		Locality:    topology.Locality{Region: "us-east", Zone: "a"},
//		GatewayAddr: "127.0.0.11:15443",
//		CatalogAddr: "https://127.0.0.11:2379",
//		BindAddr:    "127.0.0.11",
//		BindPort:    membership.DefaultBindPort,
//		KeyringFile: filepath.Join(dataDir, "keyring.json"),
//		Profile:     membership.ProfileLocal,
//		Logger:      logger,
//		Registerer:  registry,
//	})
//	if err != nil { ... }
//	defer m.Shutdown()
//	if _, err := m.Join([]string{"127.0.0.12:7946"}); err != nil { ... }
//	ch, cancel := m.Subscribe()
//	defer cancel()
//	for range ch {
//		for _, p := range m.Peers() { ... p.CatalogAddr, p.Status, p.RTT ... }
//	}
//
// Tests cut gossip between members with package faulttransport through
// Config.WrapTransport.
package membership
