package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/problem"
	"github.com/vigil-authz/vigil/internal/route"
)

// ReloadResult says what a configuration reload did.
type ReloadResult struct {
	// Applied lists the sections that now run with the new values.
	Applied []string `json:"applied"`
	// RestartRequired lists changed sections that only a restart applies;
	// they keep their running values.
	RestartRequired []string `json:"restart_required"`
}

// ErrNoReloader is returned by Reload when the server was not started from
// a configuration file.
var ErrNoReloader = errors.New("this server was not started from a configuration file (--config); nothing to reload")

// SetReloader sets how Reload obtains the new configuration (typically:
// load the file again and apply the command-line overrides).
func (s *Server) SetReloader(fn func() (*config.Config, error)) { s.reloader = fn }

// Reload re-reads the configuration and applies what can change without a
// restart: the routes (routing) and the trusted token issuers (identity).
// A configuration with errors changes nothing: the running configuration
// keeps serving and the error is returned. Changes to other sections are
// reported as needing a restart. Policies are not part of this: the policy
// directory is watched on its own.
func (s *Server) Reload(ctx context.Context) (ReloadResult, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	res := ReloadResult{Applied: []string{}, RestartRequired: []string{}}
	if s.reloader == nil {
		return res, ErrNoReloader
	}
	next, err := s.reloader()
	if err != nil {
		s.metrics.Reload("config", "failure")
		s.log.Error("configuration reload rejected; the running configuration keeps serving", "err", err)
		return res, err
	}
	cur := s.reloadBase
	if cur == nil {
		cur = s.cfg
	}
	reject := func(err error) (ReloadResult, error) {
		s.metrics.Reload("config", "failure")
		s.log.Error("configuration reload rejected; the running configuration keeps serving", "err", err)
		return res, err
	}
	live := s.gateway != nil && next.GatewayEnabled()
	// Build everything first; swap only when all of it is valid.
	var table *route.Table
	var verifier *identity.Verifier
	if live && !reflect.DeepEqual(cur.Routing, next.Routing) {
		if table, err = route.New(ctx, next.Routing, s.log.With("component", "route")); err != nil {
			return reject(fmt.Errorf("routing: %w", err))
		}
	}
	if live && !reflect.DeepEqual(cur.Identity, next.Identity) {
		if verifier, err = identity.NewVerifier(next.Identity, &http.Client{Timeout: 10 * time.Second}, s.log.With("component", "identity"), nil); err != nil {
			return reject(err)
		}
	}
	if table != nil {
		s.routes.p.Store(table)
		res.Applied = append(res.Applied, "routing")
	}
	if verifier != nil {
		s.mu.Lock()
		runCtx := s.runCtx
		s.mu.Unlock()
		if runCtx == nil {
			runCtx = context.Background()
		}
		// Load the new issuers' keys before switching, so that valid tokens
		// keep passing across the reload.
		verifier.Start(runCtx)
		if old := s.auth.p.Swap(verifier); old != nil {
			old.Close()
		}
		res.Applied = append(res.Applied, "identity")
	}
	for _, sec := range []struct {
		name    string
		a, b    any
		enabled bool
	}{
		{"server", cur.Server, next.Server, true},
		{"data_dir", cur.DataDir, next.DataDir, true},
		{"log", cur.Log, next.Log, true},
		{"policies", cur.Policies, next.Policies, true},
		{"authzen", cur.AuthZEN, next.AuthZEN, true},
		{"admin", cur.Admin, next.Admin, true},
		{"gateway", cur.Gateway, next.Gateway, true},
		{"state", cur.State, next.State, true},
		{"signals", cur.Signals, next.Signals, true},
		{"risk", cur.Risk, next.Risk, true},
		{"cluster", cur.Cluster, next.Cluster, true},
		{"routing", cur.Routing, next.Routing, s.gateway == nil || !next.GatewayEnabled()},
		{"identity", cur.Identity, next.Identity, s.gateway == nil || !next.GatewayEnabled()},
	} {
		if sec.enabled && !reflect.DeepEqual(sec.a, sec.b) {
			res.RestartRequired = append(res.RestartRequired, sec.name)
		}
	}
	// The running configuration now has the applied sections.
	updated := *cur
	updated.Routing, updated.Identity = next.Routing, next.Identity
	if s.gateway == nil || !next.GatewayEnabled() {
		updated.Routing, updated.Identity = cur.Routing, cur.Identity
	}
	s.reloadBase = &updated // compared against by the next reload
	s.metrics.Reload("config", "success")
	s.log.Info("configuration reloaded", "applied", res.Applied, "restart_required", res.RestartRequired)
	return res, nil
}

// reloadHandler serves POST /admin/v1/config/reload.
func (s *Server) reloadHandler(w http.ResponseWriter, r *http.Request) {
	res, err := s.Reload(r.Context())
	switch {
	case errors.Is(err, ErrNoReloader):
		problem.Error(w, http.StatusConflict, err.Error())
	case err != nil:
		problem.Write(w, problem.Details{Status: http.StatusUnprocessableEntity, Title: "Configuration rejected",
			Detail: "the configuration has errors; the running configuration keeps serving",
			Extra:  map[string]any{"error": err.Error()}})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(res)
	}
}
