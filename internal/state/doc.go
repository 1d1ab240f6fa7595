// Package state owns Vigil's live security state: the durable journal of
// signals and the immutable snapshot materialised from it that every
// decision reads.
//
// # Journal
//
// Signals are appended to the NATS JetStream stream VIGIL_SIGNALS (subjects
// vigil.signals.<kind>, file storage) as JSON Signal records. By default
// the NATS server runs in-process (JetStream files under data_dir, no port
// opened); with nats_url every replica connects to the same external server
// or cluster. After connecting there is one code path. Records carry
// Nats-Msg-Id = hash(Signal.ID), so the stream drops duplicates within
// dedupe_window; applying a signal twice has no further effect anyway.
//
// Two lifetimes keep the journal bounded without losing state:
//
//   - Transient kinds (revocations, token-claims-change,
//     assurance-level-change) matter only to tokens issued before them.
//     They are published with a per-message TTL of retention (NATS 2.11+)
//     and dropped from memory once their event time is older than
//     retention. Retention must cover the longest token lifetime.
//   - Stateful kinds (account-disabled/enabled/purged,
//     device-compliance-change, risk-level-change) hold until replaced.
//     They have no TTL; when a newer record replaces one for every subject
//     it applied to, the superseded record is deleted from the stream. The
//     journal therefore keeps exactly the records that define the current
//     state, however long ago they arrived.
//
// A stream-wide max age would forget a disabled account after retention;
// that is why per-message TTLs are used instead.
//
// # Snapshot
//
// One goroutine applies journal messages in stream order to a builder and
// swaps in a new *Snapshot (atomic.Pointer) whenever its queue drains.
// The index is sharded (4096 shards); an update copies only the shards it
// touches. Readers call Snapshot.Facts: a few map lookups, no allocation
// when nothing matches. Store.Publish returns only after the local snapshot
// includes the record, which is Vigil's freshness guarantee.
//
// Conflicts resolve by event time, not arrival order: the newest
// revocation wins; for account state, device compliance and risk the
// newest statement wins (ties broken by journal order); across the
// subjects a request matches, Disabled/device follow the newest statement,
// Purged is permanent, and Risk takes the highest level.
//
// # Subject identifiers and Query
//
// A signal's subject (RFC 9493 / SSF 1.0) is recorded under index keys; a
// request's Query presents keys; they match when a key is equal:
//
//	format              recorded as                         matched by Query
//	iss_sub             user (iss, sub)                     Issuer + Subject
//	email               user email (ASCII case-folded)      Email
//	account (acct:x)    user email x                        Email
//	opaque              user sub of any issuer              Subject
//	did, uri            user sub of any issuer              Subject
//	phone_number        user phone                          Phone
//	jwt_id              token (iss, jti)                    Issuer + TokenID
//	saml_assertion_id   token (issuer, assertion_id)        Issuer + TokenID
//	aliases             every identifier (any one matches)  as above
//	ip-addresses        rejected (nothing in a request identifies a subject by address)
//
// Depending on the kind, a top-level simple identifier names something
// other than the user: session-revoked with opaque names the session id
// (SessionID) as well as the user sub; device-compliance-change with
// opaque/uri/did names the device (DeviceID); risk-level-change follows its
// principal (DEVICE → DeviceID, SESSION → SessionID, TENANT → Tenant).
//
// A complex subject's members are each matched in their own dimension:
// user (as above), session → SessionID, device → DeviceID, application →
// ClientID, tenant → Tenant; the member's id is its opaque id (or uri, did
// url, email, phone number, or sub). Members absent from the signal are
// wildcards; members present must all match, and a request that lacks the
// field does not match. So complex{user, session} applies to that session
// only, complex{user, device} to that user's requests from that device,
// complex{tenant} to the whole tenant. org_unit and group have no request
// counterpart: they are not constraints (the signal applies more broadly,
// which fails closed); the signal receiver drops signals that declare them
// critical.
//
// # Capacity
//
// max_subjects caps the tracked index keys. Publish refuses a signal that
// would add keys beyond it (ErrCapacity: retry later); records already in
// the journal are always applied, so acknowledged signals are never lost.
// Memory is about 250 bytes per tracked key (see BenchmarkMemoryPerSubject).
package state
