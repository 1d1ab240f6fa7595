package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/route"
)

// gatewayServer runs a full Vigil (gateway, live state, admin API) in front
// of a trivial upstream, with a local token issuer.
type gatewayServer struct {
	*Server
	issuer   *identity.LocalIssuer
	gwURL    string
	adminURL string
	mainURL  string
}

func startGatewayServer(t testing.TB, policies map[string]string, mutate ...func(*config.Config)) *gatewayServer {
	t.Helper()
	var issuerHandler http.Handler = http.NotFoundHandler()
	issuerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { issuerHandler.ServeHTTP(w, r) }))
	t.Cleanup(issuerSrv.Close)
	li, err := identity.NewLocalIssuer(issuerSrv.URL, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	issuerHandler = li
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Vigil-Subject"))
	}))
	t.Cleanup(upstream.Close)

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Policies.Dir = policyDir(t, policies)
	cfg.Server.Addr, cfg.Server.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Gateway.Upstreams = []gateway.Upstream{{Name: "api", URL: upstream.URL}}
	cfg.Identity.Issuers = []identity.IssuerConfig{li.IssuerConfig("api")}
	cfg.Routing.Routes = []route.Route{{Method: route.Methods{"GET"}, Path: "/docs/{id}", Resource: route.Resource{Type: "Doc"}}}
	for _, m := range mutate {
		m(cfg)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for s.Ready() != nil || s.ListenerAddr("gateway") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", s.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	main, admin := s.Addrs()
	return &gatewayServer{Server: s, issuer: li, gwURL: "http://" + s.ListenerAddr("gateway").String(),
		adminURL: "http://" + admin.String(), mainURL: "http://" + main.String()}
}

// TestNoAllowAfterRevocationAcknowledged is the freshness guarantee under
// load: clients keep requesting with a token while its session is revoked;
// no request that started after the revocation was acknowledged may be
// allowed. Repeated for many subjects.
func TestNoAllowAfterRevocationAcknowledged(t *testing.T) {
	gs := startGatewayServer(t, map[string]string{"main.cedar": `@id("users-read") permit(principal, action, resource);`})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 10 * time.Second}
	const rounds, workers = 20, 4
	var lateAllows, total atomic.Int64
	for round := 0; round < rounds; round++ {
		sub := fmt.Sprintf("user-%d", round)
		tok, err := gs.issuer.Mint(map[string]any{"sub": sub, "aud": "api", "sid": "s-" + sub, "client_id": "c", "jti": sub,
			"iat": time.Now().Add(-time.Minute).Unix()}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var ackedAt atomic.Int64 // unix nanos, 0 until the revocation was acknowledged
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					started := time.Now().UnixNano()
					req, _ := http.NewRequest("GET", gs.gwURL+"/docs/1", nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					total.Add(1)
					if a := ackedAt.Load(); a != 0 && started > a && resp.StatusCode == 200 {
						lateAllows.Add(1)
					}
				}
			}()
		}
		time.Sleep(20 * time.Millisecond)
		body := fmt.Sprintf(`{"kind":"session-revoked","subject":{"format":"opaque","id":%q}}`, sub)
		req, _ := http.NewRequest("POST", gs.adminURL+"/admin/v1/signals", bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+gs.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("revocation: %d", resp.StatusCode)
		}
		ackedAt.Store(time.Now().UnixNano())
		time.Sleep(30 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
	}
	if n := lateAllows.Load(); n != 0 {
		t.Fatalf("%d requests that started after the revocation was acknowledged were allowed (of %d)", n, total.Load())
	}
	t.Logf("%d requests over %d revocations; none allowed after an acknowledgement", total.Load(), rounds)
}

// TestGatewayRevocationAnswersClaimsChallenge checks the 401 a revoked
// token gets, for CAE-capable clients and others.
func TestGatewayRevocationAnswersClaimsChallenge(t *testing.T) {
	gs := startGatewayServer(t, map[string]string{"main.cedar": `@id("all") permit(principal, action, resource);`})
	mint := func(sub string, claims map[string]any) string {
		c := map[string]any{"sub": sub, "aud": "api", "iat": time.Now().Add(-time.Minute).Unix(), "jti": sub + "-1", "client_id": "c"}
		for k, v := range claims {
			c[k] = v
		}
		tok, err := gs.issuer.Mint(c, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	get := func(tok string) *http.Response {
		req, _ := http.NewRequest("GET", gs.gwURL+"/docs/1", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	capable := mint("erin", map[string]any{"xms_cc": []string{"cp1"}})
	plain := mint("erin", nil)
	if r := get(capable); r.StatusCode != 200 {
		t.Fatalf("before: %d", r.StatusCode)
	}
	code, body := do(t, gs.AdminHandler(), "POST", "/admin/v1/signals", gs.AdminToken, `{"kind":"session-revoked","subject":{"format":"opaque","id":"erin"}}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	r := get(capable)
	if wa := r.Header.Get("WWW-Authenticate"); r.StatusCode != 401 || !bytes.Contains([]byte(wa), []byte(`error="insufficient_claims"`)) || !bytes.Contains([]byte(wa), []byte(`claims="`)) {
		t.Fatalf("CAE-capable client: %d %q", r.StatusCode, wa)
	}
	r = get(plain)
	if wa := r.Header.Get("WWW-Authenticate"); r.StatusCode != 401 || !bytes.Contains([]byte(wa), []byte(`error="invalid_token"`)) {
		t.Fatalf("other client: %d %q", r.StatusCode, wa)
	}
	fresh := mint("erin", map[string]any{"iat": time.Now().Add(2 * time.Second).Unix()})
	if r := get(fresh); r.StatusCode != 200 {
		t.Fatalf("a token issued after the revocation must pass: %d", r.StatusCode)
	}
}
