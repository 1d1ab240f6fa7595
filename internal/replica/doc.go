// Package replica makes Vigil replicas behave as one and say honestly how
// fresh they are.
//
// Policy activations — pushes, entity updates, rollbacks and directory
// reloads — are not applied locally but published: the bundle to a
// content-addressed JetStream object store, then a small record to the
// VIGIL_POLICIES stream. Every replica, the publishing one included,
// follows that stream and applies each record to its policy.Store, which
// swaps the compiled set in atomically. The stream sequence is the policy
// sequence. The embedded single-node setup uses the same path: it is a
// cluster of one.
//
// Freshness is proven, not assumed. A prober asks the cluster for the last
// sequence of the signal journal and of the policy stream (the stream
// leaders answer, so a replica on the minority side of a partition gets no
// answer). When this replica has applied both, it was fresh as of the
// moment the probe was sent. Stale reports an error once that proof is
// older than cluster.max_staleness — because the replica is cut off, or
// knows it is behind — and the enforcement surfaces answer 503 until it
// has caught up.
//
// Lifecycle: Open creates the stream and bucket if needed and starts
// following the log from its first record (while replaying, only the
// latest activation is compiled) and probing. WaitReplayed returns once
// the log has been replayed; Ready once freshness is proven too. Close
// stops every goroutine; the NATS connection belongs to the state store.
package replica
