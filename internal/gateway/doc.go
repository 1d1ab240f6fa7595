// Package gateway is Vigil's enforcement point in front of REST APIs: a
// reverse proxy and a forward-auth endpoint that decide every request
// against the active policies and live state, and a registry of long-lived
// requests (WebSocket, server-sent events, streaming responses) that are
// re-decided whenever policies or live state change and closed as soon as
// they are no longer allowed.
//
// Request flow (proxy and forward-auth alike):
//
//  1. route: the method and the raw path are matched against the route
//     table; malformed or unsafe paths are rejected (400), unmatched
//     requests are denied (403).
//  2. identity: the bearer token is verified (401 with an RFC 6750
//     challenge when missing on a non-anonymous route or invalid).
//  3. request: principal (from the token, or Anonymous::"anonymous"),
//     action and resource (from the route) and the context documented in
//     docs/gateway-request.md; Options.Enrich may add live-state signals.
//  4. decision: one engine.View decides; guards (revocations) answer 401
//     with a CAE claims challenge or invalid_token, step-up forbids answer
//     401 insufficient_user_authentication (RFC 9470), other denials 403
//     problem+json. Policy internals never reach the client; they are
//     logged with the request id.
//  5. forward: hygiene-checked headers, X-Forwarded-*, verified identity
//     headers; 502/504 on upstream failure.
//
// Every decided request (and every refused bearer token) is also handed to
// Options.Observe, when set, as an Event: the behaviour feed of the risk
// engine. Building the Event allocates nothing; the hook must not block.
//
// Lifecycle: New validates and builds everything without serving. Serve or
// the handler itself serves. Reevaluate re-decides every registered stream
// (call it on every policy swap and live-state change). Shutdown stops the
// listeners, closes the registered streams and drains in-flight requests.
package gateway
