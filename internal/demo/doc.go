// Package demo runs `vigil demo`: a complete, self-contained Vigil
// installation on loopback that needs no files and nothing else installed.
//
// It starts, in one process:
//
//   - a sample REST API (documents with owners: list, get, create, update,
//     delete; a server-sent event stream at /events and a WebSocket at /ws);
//   - a local token issuer (identity.LocalIssuer: OpenID Connect discovery
//     and a JWKS) with four users: alice (admin), bob (editor), carol
//     (viewer) and dave (editor who signed in with a password only, so he
//     must step up before deleting);
//   - Vigil itself through internal/server with a configuration built in
//     code: the gateway in front of the sample API, the AuthZEN API and the
//     admin API, with the embedded Cedar policy set (RBAC, ownership and a
//     step-up forbid).
//
// Once everything is ready it prints a tour: ready-made tokens and
// copy-pasteable curl commands, each with the answer it gets. The tour is
// also returned as data (Tour), so tests run exactly what is printed.
//
// Lifecycle: New checks the options and prepares nothing on disk. Run
// creates the data directory, binds the sample API and the issuer on
// ephemeral loopback ports, builds and runs the server, prints the tour
// when /readyz would answer 200 and serves until its context is cancelled;
// it then shuts the server down (which closes open streams), then the
// sample API and the issuer, and removes a temporary data directory.
package demo
