package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/route"
)

// TestConfigReload changes the routes of a running gateway, then offers a
// broken configuration: the first is applied without a restart, the second
// is rejected and the running configuration keeps serving.
func TestConfigReload(t *testing.T) {
	gs := startGatewayServer(t, map[string]string{"main.cedar": `@id("all") permit(principal, action, resource);`})
	tok, err := gs.issuer.Mint(map[string]any{"sub": "alice", "aud": "api", "jti": "a", "client_id": "c"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) int {
		req, _ := http.NewRequest("GET", gs.gwURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	base := *gs.cfg
	var next func() (*config.Config, error)
	gs.SetReloader(func() (*config.Config, error) { return next() })

	if get("/docs/1") != 200 || get("/reports/1") != 403 {
		t.Fatal("before: /docs is routed, /reports is not")
	}
	t.Run("new routes apply without a restart", func(t *testing.T) {
		next = func() (*config.Config, error) {
			c := base
			c.Routing.Routes = append([]route.Route{{Method: route.Methods{"GET"}, Path: "/reports/{id}", Resource: route.Resource{Type: "Report"}}}, base.Routing.Routes...)
			c.Server.ShutdownTimeout = time.Minute // needs a restart
			return &c, nil
		}
		res, err := gs.Reload(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(res.Applied, ",") != "routing" || strings.Join(res.RestartRequired, ",") != "server" {
			t.Fatalf("%+v", res)
		}
		if get("/reports/1") != 200 || get("/docs/1") != 200 {
			t.Fatal("the new route is not served")
		}
	})
	t.Run("a configuration with errors keeps the running one", func(t *testing.T) {
		next = func() (*config.Config, error) {
			c := base
			c.Routing.Routes = []route.Route{{Method: route.Methods{"GET"}, Path: "/{a}/{a}"}}
			return &c, nil
		}
		if _, err := gs.Reload(context.Background()); err == nil {
			t.Fatal("a conflicting route table must be rejected")
		}
		code, body := do(t, gs.AdminHandler(), "POST", "/admin/v1/config/reload", gs.AdminToken, "")
		if code != 422 || !strings.Contains(body, "keeps serving") {
			t.Fatalf("%d %s", code, body)
		}
		if get("/reports/1") != 200 {
			t.Fatal("a rejected reload changed the running routes")
		}
	})
	t.Run("a server without a config file says there is nothing to reload", func(t *testing.T) {
		s := newTestServer(t, policyDir(t, map[string]string{"a.cedar": `permit(principal, action, resource);`}))
		if code, body := do(t, s.AdminHandler(), "POST", "/admin/v1/config/reload", s.AdminToken, ""); code != 409 {
			t.Fatalf("%d %s", code, body)
		}
	})
}
