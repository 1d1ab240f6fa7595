// Package risk owns Vigil's behaviour-based risk: detectors that watch
// live traffic and raise a user's or a session's risk, which policies then
// read as context.risk.{score, level, reasons}.
//
// Data flow:
//
//	gateway decision ──Observe (non-blocking, bounded queue)──▶ engine goroutine
//	  detectors: request_rate, denied_burst, impossible_travel,
//	             session_hijack, new_device, new_country, enumeration
//	  → contributions (points, reason, expiry) per user and per session
//	  → score = 1 − Π(1 − pᵢ/100), level LOW / MEDIUM / HIGH
//	  → on a level change (or a large score change, rate-limited):
//	    publisher goroutine ──▶ signal journal (risk-level-change, source "risk")
//	                        ──▶ optional CAEP SETs to receivers (Transmitter)
//
// Nothing on the request path waits for the engine, and the engine never
// waits for the journal: a full queue drops events (counted), a failed
// write is retried on a later tick. Because level changes go through the
// journal they replicate to every replica and survive restarts; after a
// restart the engine resumes a level it recorded (carried_over) so that it
// is lowered in time.
//
// Memory is bounded: subjects, sessions, sessionless tokens and client
// addresses live in LRU tables capped by limits.* and evicted after
// limits.idle_ttl. See docs/risk.md for the detectors and their settings.
package risk
