// Package signal receives Shared Signals (SSF/CAEP/RISC) security event
// tokens.
package signal

import (
	_ "github.com/lestrrat-go/jwx/v3/jwk"
	_ "github.com/lestrrat-go/jwx/v3/jws"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go/jetstream"
)
