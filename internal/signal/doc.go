// Package signal receives Shared Signals: it verifies Security Event
// Tokens (RFC 8417) from configured SSF transmitters, normalises CAEP, RISC
// and SSF events into state.Signal values, and publishes them to the live
// state. It serves the RFC 8935 push endpoint and runs RFC 8936 poll
// clients.
package signal
