package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/route"
)

// A gateway in front of an API: tokens from a local issuer, one route, one
// policy.
func Example() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Vigil-Subject"))
	}))
	defer api.Close()

	// Token issuer and verifier.
	var issuerHandler http.Handler = http.NotFoundHandler()
	issuerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { issuerHandler.ServeHTTP(w, r) }))
	defer issuerSrv.Close()
	issuer, _ := identity.NewLocalIssuer(issuerSrv.URL, "ES256")
	issuerHandler = issuer
	verifier, _ := identity.NewVerifier(identity.Config{Issuers: []identity.IssuerConfig{issuer.IssuerConfig("api")}}, nil, nil, nil)
	verifier.Start(context.Background())
	defer verifier.Close()

	// Policies and routes.
	store := policy.NewStore(policy.StoreOptions{})
	_, _, _ = store.Apply(policy.Bundle{Files: []policy.File{{Name: "api.cedar", Data: []byte(
		`permit (principal in Role::"reader", action == Action::"GET /hello", resource);`)}}}, "example")
	table, _ := route.Compile(route.Config{Routes: []route.Route{{Method: route.Methods{"GET"}, Path: "/hello"}}}, nil)

	gw, err := gateway.New(gateway.Options{
		Config: gateway.Config{Upstreams: []gateway.Upstream{{Name: "api", URL: api.URL}}},
		Views:  engine.New(store, nil).View,
		Auth:   verifier,
		Router: table,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	front := httptest.NewServer(gw) // or gw.Serve(listener) with the configured timeouts and TLS
	defer front.Close()
	defer gw.Shutdown(context.Background())

	for _, roles := range [][]string{{"reader"}, nil} {
		tok, _ := issuer.Mint(map[string]any{"sub": "ada", "aud": "api", "client_id": "cli", "roles": roles}, time.Hour)
		req, _ := http.NewRequest("GET", front.URL+"/hello", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(roles, resp.StatusCode)
	}
	// Output:
	// [reader] 200
	// [] 403
}
