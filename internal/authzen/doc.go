// Package authzen is Vigil's OpenID AuthZEN Authorization API 1.0 surface:
// the access evaluation and evaluations endpoints, the subject, resource and
// action search endpoints, and the PDP metadata document.
//
// The package owns the wire contract only. A request is decoded under strict
// size and nesting limits, mapped onto a Cedar request (see MAPPING.md in
// this directory, published as docs/authzen.md), and decided by an [engine.View]
// pinned once per HTTP request, so every decision of a batch or a search
// page sees the same policy version. Decisions are the engine's; this
// package never turns an error into an allow.
//
// Errors that concern the whole request are answered with an RFC 9457
// problem document (application/problem+json) whose "detail" names the
// offending field. Errors that concern one item of a batch are reported
// inside that item, as the AuthZEN specification prescribes. A deny is
// always 200 {"decision":false}.
package authzen
