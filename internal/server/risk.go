package server

import (
	"crypto"
	"fmt"
	"path/filepath"

	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/risk"
)

// RiskJWKSPath is where the public key of outbound risk SETs is served on
// the main listener.
const RiskJWKSPath = "/.well-known/vigil-risk-jwks.json"

// setupRisk builds the behaviour risk engine when the gateway runs and
// risk.enabled is not false: the engine and (with outbound receivers or
// issuer) the SET transmitter run as background tasks; GET
// /admin/v1/risk inspects scores; the transmitter's JWKS is served at
// RiskJWKSPath. It returns nil when risk is off. Call it before
// setupGateway and pass riskObserver(engine) as gateway Options.Observe.
//
// Shutdown: the runners stop after the listeners have drained, so the
// last events are scored and queued changes written (bounded by
// risk.publish.timeout) before the state store closes.
func (s *Server) setupRisk() (*risk.Engine, error) {
	cfg := s.cfg.Risk
	if !s.cfg.GatewayEnabled() || !cfg.IsEnabled() {
		return nil, nil
	}
	log := s.log.With("component", "risk")
	var notifier risk.Notifier
	if ob := cfg.Outbound; len(ob.Receivers) > 0 || ob.Issuer != "" {
		var key crypto.Signer
		var err error
		if ob.SigningKey != "" {
			key, err = risk.LoadSigningKey(ob.SigningKey, ob.Algorithm)
		} else {
			key, err = risk.LoadOrCreateSigningKey(filepath.Join(s.cfg.DataDir, "risk", "signing-key.pem"), ob.Algorithm)
		}
		if err != nil {
			return nil, fmt.Errorf("risk.outbound.signing_key: %w", err)
		}
		tr, err := risk.NewTransmitter(risk.TransmitterOptions{
			Config:     ob,
			Key:        key,
			Log:        log.With("part", "outbound"),
			Registerer: s.metrics.Registry,
		})
		if err != nil {
			return nil, err
		}
		s.Handle("GET "+RiskJWKSPath, tr.JWKSHandler())
		s.AddRunner(tr.Run)
		notifier = tr
	}
	eng, err := risk.New(risk.Options{
		Config:     cfg,
		Publisher:  s.state,
		State:      s.state,
		Notifier:   notifier,
		Registerer: s.metrics.Registry,
		Log:        log,
	})
	if err != nil {
		return nil, err
	}
	s.AddRunner(eng.Run)
	s.HandleAdmin("GET /admin/v1/risk", eng.AdminHandler())
	return eng, nil
}

// riskObserver feeds gateway decisions to the engine; nil (no hook, no
// cost) without one.
func riskObserver(eng *risk.Engine) gateway.ObserveFunc {
	if eng == nil {
		return nil
	}
	return func(e gateway.Event) { eng.Observe(riskEvent(e)) }
}

// riskEvent converts a gateway event. It allocates nothing.
func riskEvent(e gateway.Event) risk.Event {
	return risk.Event{
		Time:         e.Time,
		Outcome:      riskOutcome(e.Outcome),
		Issuer:       e.Issuer,
		Subject:      e.Subject,
		SessionID:    e.SessionID,
		TokenID:      e.TokenID,
		IP:           e.IP,
		Country:      e.Geo.Country,
		Latitude:     e.Geo.Latitude,
		Longitude:    e.Geo.Longitude,
		AccuracyKM:   float64(e.Geo.AccuracyRadius),
		Located:      e.Geo.Located(),
		DeviceID:     e.DeviceID,
		UserAgent:    e.UserAgent,
		Action:       e.Action,
		ResourceType: e.ResourceType,
		ResourceID:   e.ResourceID,
	}
}

func riskOutcome(o gateway.Outcome) risk.Outcome {
	switch o {
	case gateway.OutcomeAllow:
		return risk.Allowed
	case gateway.OutcomeStepUp:
		return risk.SteppedUp
	case gateway.OutcomeRevoked:
		return risk.Revoked
	case gateway.OutcomeUnauthenticated:
		return risk.Unauthenticated
	}
	return risk.Denied
}
