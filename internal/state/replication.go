package state

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream returns the JetStream context of the journal's connection, so
// that the other replicated logs (policy activations, see
// internal/replica) share one connection and one code path with the
// journal, embedded or external.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Conn returns the journal's NATS connection (for connection status).
func (s *Store) Conn() *nats.Conn { return s.nc }
