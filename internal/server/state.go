package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/state"
)

// setupState opens the signal journal and starts materialising live state.
// The server is not ready until the journal has been replayed.
func (s *Server) setupState(ctx context.Context) error {
	st, err := openState(ctx, s.cfg.EffectiveState(), s.log.With("component", "state"))
	if err != nil {
		return fmt.Errorf("open live state: %w", err)
	}
	s.state = st
	s.AddReadyCheck(func() error {
		if !st.Ready() {
			return errors.New("live state is still replaying the signal journal")
		}
		return nil
	})
	s.AddCloser(func(context.Context) error { return st.Close() })
	// Long-lived requests are re-decided whenever live state changes.
	s.AddRunner(func(ctx context.Context) error {
		for {
			ch := st.Changed()
			select {
			case <-ctx.Done():
				return nil
			case <-ch:
				if s.gateway != nil {
					s.gateway.Reevaluate()
				}
			}
		}
	})
	return nil
}

// State returns the live-state store.
func (s *Server) State() *state.Store { return s.state }

// enrichFromState fills the gateway's context signals from live state:
// session assurance, device compliance, risk, and claim overrides on the
// principal. Guards (revocation, disabled accounts) run in the engine.
func enrichFromState(v engine.View, req *decision.Request, sig *gateway.Signals) {
	if req.Identity == nil || v.State == nil {
		return
	}
	f := v.Facts(req.Identity)
	if f.Assurance != nil {
		sig.Session.Assurance = f.Assurance.Level
		sig.Session.AssuranceNamespace = f.Assurance.Namespace
		sig.Session.AssuranceTime = f.Assurance.Time
	}
	if f.DeviceCompliant != nil {
		sig.Device.Compliant = *f.DeviceCompliant
		sig.Device.ComplianceTime = f.DeviceTime
	}
	if f.Risk.Level != "" {
		sig.Risk.Score = int64(f.Risk.Score)
		sig.Risk.Level = f.Risk.Level
		sig.Risk.Reasons = f.Risk.Reasons
		sig.Risk.Time = f.Risk.Time
	}
	if len(f.ClaimOverrides) > 0 {
		req.Entities = engine.OverrideClaims(req.Entities, req.Principal, f.ClaimOverrides)
	}
}
