package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/route"
)

// setupGateway builds the token verifier, the route table and the gateway
// when gateway.listen is configured. The gateway serves on its own
// listener; its forward-auth endpoint is served there too.
func (s *Server) setupGateway(ctx context.Context) error {
	if !s.cfg.GatewayEnabled() {
		return nil
	}
	log := s.log.With("component", "gateway")
	verifier, err := identity.NewVerifier(s.cfg.Identity, &http.Client{Timeout: 10 * time.Second}, s.log.With("component", "identity"), nil)
	if err != nil {
		return err
	}
	table, err := route.New(ctx, s.cfg.Routing, s.log.With("component", "route"))
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	g, err := gateway.New(gateway.Options{
		Config:   s.cfg.Gateway,
		Views:    s.engine.View,
		Await:    s.engine.Await,
		Auth:     verifier,
		Router:   table,
		Log:      log,
		Recorder: s.metrics,
		Enrich:   s.enrich,
		Observe:  riskObserver(s.risk),
	})
	if err != nil {
		return err
	}
	s.gateway = g
	s.verifier = verifier
	// Streams are re-decided whenever the policy version changes.
	s.store.Subscribe(func(_ *policy.Version) { go g.Reevaluate() })

	s.AddRunner(func(ctx context.Context) error {
		verifier.Start(ctx)
		<-ctx.Done()
		verifier.Close()
		return nil
	})
	s.AddReadyCheck(func() error {
		if err := verifier.Ready(); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		return nil
	})
	s.addListener(listener{
		name: "gateway",
		addr: s.cfg.Gateway.Listen,
		serve: func(ln net.Listener) error {
			return g.Serve(ln)
		},
		shutdown: g.Shutdown,
	})
	// Release the GeoIP database once no listener serves the gateway.
	s.AddCloser(func(context.Context) error { return g.Close() })
	return nil
}

// Gateway returns the gateway, or nil when none is configured.
func (s *Server) Gateway() *gateway.Gateway { return s.gateway }
