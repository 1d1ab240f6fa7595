package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
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
	s.auth.p.Store(verifier)
	s.routes.p.Store(table)
	g, err := gateway.New(gateway.Options{
		Config:   s.cfg.Gateway,
		Views:    s.engine.View,
		Await:    s.engine.Await,
		Auth:     &s.auth,
		Router:   &s.routes,
		Log:      log,
		Recorder: s.metrics,
		Enrich:   s.enrich,
		Observe:  riskObserver(s.risk),
	})
	if err != nil {
		return err
	}
	s.gateway = g
	// Streams are re-decided whenever the policy version changes.
	s.store.Subscribe(func(_ *policy.Version) { go g.Reevaluate() })

	s.AddRunner(func(ctx context.Context) error {
		verifier.Start(ctx)
		<-ctx.Done()
		s.auth.p.Load().Close() // the one in use: a reload may have replaced it
		return nil
	})
	s.AddReadyCheck(func() error {
		if err := s.auth.p.Load().Ready(); err != nil {
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

// swapAuth is the gateway's token verifier, replaceable by a config reload
// without touching the gateway or its open streams.
type swapAuth struct {
	p atomic.Pointer[identity.Verifier]
}

func (a *swapAuth) Verify(ctx context.Context, raw string) (*identity.Token, error) {
	return a.p.Load().Verify(ctx, raw)
}

// swapRouter is the gateway's route table, replaceable by a config reload.
type swapRouter struct{ p atomic.Pointer[route.Table] }

func (r *swapRouter) Match(method, rawPath string) (route.Match, error) {
	return r.p.Load().Match(method, rawPath)
}

var (
	_ gateway.Authenticator = (*swapAuth)(nil)
	_ gateway.Router        = (*swapRouter)(nil)
)

// Gateway returns the gateway, or nil when none is configured.
func (s *Server) Gateway() *gateway.Gateway { return s.gateway }
