package server

import (
	"net/http"

	"github.com/vigil-authz/vigil/internal/apiauth"
	"github.com/vigil-authz/vigil/internal/authzen"
)

// setupAuthZEN mounts the AuthZEN API on the main listener, behind API-key
// authentication when authzen.auth.keys is set.
func (s *Server) setupAuthZEN() error {
	c := s.cfg.AuthZEN
	if !c.IsEnabled() {
		return nil
	}
	h := authzen.New(authzen.Options{
		Views:          s.engine.View,
		Await:          s.engine.Await,
		Issuer:         c.Issuer,
		Limits:         c.Limits,
		Recorder:       s.metrics,
		Log:            s.log.With("component", "authzen"),
		DisableExplain: c.DisableExplain,
	})
	keys := apiauth.NewKeys(c.Auth.Keys...)
	if keys.Len() == 0 {
		s.log.Warn("the AuthZEN API accepts unauthenticated callers; set authzen.auth.keys in production")
	}
	var handler http.Handler = apiauth.Require(keys, "vigil", true, h)
	for _, p := range []string{authzen.PathEvaluation, authzen.PathEvaluations, authzen.PathSearchSubject,
		authzen.PathSearchResource, authzen.PathSearchAction} {
		s.mainMux.Handle(p, handler)
	}
	// Discovery metadata is public.
	s.mainMux.Handle(authzen.PathMetadata, h)
	return nil
}
