package server

import (
	"net/http"
	"time"

	"github.com/vigil-authz/vigil/internal/signal"
)

// PathSSFPush is where SSF transmitters push Security Event Tokens (RFC
// 8935) on the main listener.
const PathSSFPush = "/ssf/push"

// setupSignals starts the SSF receiver when transmitters are configured:
// the push endpoint on the main listener and a poll client per polled
// transmitter. Accepted signals go through the journal (s.state).
func (s *Server) setupSignals() error {
	if len(s.cfg.Signals.Transmitters) == 0 {
		return nil
	}
	rcv := signal.New(s.cfg.Signals, s.state, s.log.With("component", "signal"),
		signal.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		signal.WithRegisterer(s.metrics.Registry))
	s.mainMux.Handle(PathSSFPush, rcv)
	s.AddRunner(rcv.Run)
	s.receiver = rcv
	return nil
}
