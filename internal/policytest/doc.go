// Package policytest runs policy tests and one-off evaluations against a
// compiled policy set: it owns the YAML test file format behind
// `vigil test` (cases of request → expected decision, see
// docs/policies.md), the request forms `vigil eval` accepts (flags or a
// JSON document), the printers for both, and the JSON → Cedar value
// conversion they share.
//
// Parsing is pure (Parse, ParseRequestJSON); Run reads test files from
// disk and decides each case with the decision core, the same code path
// the gateway uses, so a green test run means the gateway decides the same
// way for the same request.
package policytest
