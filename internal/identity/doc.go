// Package identity verifies the access tokens presented to Vigil's gateway:
// JWTs signed by a configured issuer and checked against that issuer's JWKS
// (RFC 8725, RFC 9068), and opaque tokens checked by RFC 7662 introspection.
//
// It owns the trust material and everything that may be cached about a
// token because it cannot change: a valid signature and the claims it
// covers. It makes no authorization decision and caches none; revocation,
// risk and policy are evaluated elsewhere on every request.
//
// Lifecycle: NewVerifier builds a Verifier without I/O; Start fetches every
// issuer's keys once (failures are logged, not fatal: tokens whose keys are
// unknown are denied) and starts background refresh; Verify may be called
// before Start and concurrently; Close stops the background work. A
// configuration change builds a new Verifier and closes the old one.
package identity
