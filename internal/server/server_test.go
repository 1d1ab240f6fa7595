package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
)

func newTestServer(t *testing.T, dir string) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Policies.Dir = dir
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.State().Close() })
	waitReady(t, s)
	return s
}

// waitReady waits until the live state has replayed its journal.
func waitReady(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.State().WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

func policyDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func do(t *testing.T, h http.Handler, method, path, token, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestAdminAPI(t *testing.T) {
	s := newTestServer(t, policyDir(t, map[string]string{"main.cedar": `@id("all") permit(principal, action, resource);`}))
	h := s.AdminHandler()
	tok := s.AdminToken
	if tok == "" || s.AdminTokenFile == "" {
		t.Fatal("an admin token must be generated when admin.keys is empty")
	}
	if info, err := os.Stat(s.AdminTokenFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file must be 0600: %v %v", info, err)
	}

	t.Run("requests without a key are refused", func(t *testing.T) {
		code, _ := do(t, h, "GET", "/admin/v1/policies", "", "")
		if code != 401 {
			t.Fatalf("status %d", code)
		}
		code, _ = do(t, h, "GET", "/admin/v1/policies", "wrong-token-wrong-token", "")
		if code != 401 {
			t.Fatalf("status %d", code)
		}
	})
	t.Run("the status shows the active version", func(t *testing.T) {
		code, body := do(t, h, "GET", "/admin/v1/policies", tok, "")
		if code != 200 || !strings.Contains(body, `"source": "dir:`) {
			t.Fatalf("%d %s", code, body)
		}
	})
	var pushed string
	t.Run("a valid push activates a new version", func(t *testing.T) {
		code, body := do(t, h, "POST", "/admin/v1/policies", tok, `{"files":{"p.cedar":"@id(\"deny\") forbid(principal, action, resource);"}}`)
		if code != 200 || !strings.Contains(body, `"changed": true`) {
			t.Fatalf("%d %s", code, body)
		}
		var res struct{ Version struct{ ID string } }
		json.Unmarshal([]byte(body), &res)
		pushed = res.Version.ID
		if s.Store().Active().ID != pushed {
			t.Fatal("push not active")
		}
	})
	t.Run("a broken push is rejected with located problems", func(t *testing.T) {
		code, body := do(t, h, "POST", "/admin/v1/policies", tok, `{"files":{"p.cedar":"permit(principal,\n action resource);"}}`)
		if code != 422 || !strings.Contains(body, `"line":2`) || !strings.Contains(body, `"file":"p.cedar"`) {
			t.Fatalf("%d %s", code, body)
		}
		if s.Store().Active().ID != pushed {
			t.Fatal("a broken push changed the active version")
		}
		_, status := do(t, h, "GET", "/admin/v1/policies", tok, "")
		if !strings.Contains(status, `"last_rejected": {`) {
			t.Fatalf("last rejected missing: %s", status)
		}
	})
	t.Run("malformed bodies are 400 and unknown fields are refused", func(t *testing.T) {
		for _, body := range []string{`{`, `{"files":{}}`, `{"files":{"a.cedar":"x"},"extra":1}`, `[]`} {
			if code, b := do(t, h, "POST", "/admin/v1/policies", tok, body); code != 400 {
				t.Errorf("%s: %d %s", body, code, b)
			}
		}
	})
	t.Run("rollback restores a version from the history", func(t *testing.T) {
		first := s.Store().History()[1].ID
		code, body := do(t, h, "POST", "/admin/v1/policies/rollback", tok, `{"version":"`+first+`"}`)
		if code != 200 || s.Store().Active().ID != first {
			t.Fatalf("%d %s", code, body)
		}
		if code, _ := do(t, h, "POST", "/admin/v1/policies/rollback", tok, `{"version":"nope"}`); code != 404 {
			t.Fatalf("unknown version: %d", code)
		}
	})
	t.Run("a version's files can be read back", func(t *testing.T) {
		code, body := do(t, h, "GET", "/admin/v1/policies/versions/"+pushed, tok, "")
		if code != 200 || !strings.Contains(body, "p.cedar") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("entities can be replaced and read", func(t *testing.T) {
		code, body := do(t, h, "PUT", "/admin/v1/entities", tok, `[{"uid":{"type":"User","id":"alice"},"attrs":{},"parents":[]}]`)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		code, body = do(t, h, "GET", "/admin/v1/entities", tok, "")
		if code != 200 || !strings.Contains(body, "alice") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("metrics are exposed", func(t *testing.T) {
		code, body := do(t, h, "GET", "/metrics", "", "")
		if code != 200 || !strings.Contains(body, "vigil_policy_reloads_total") || !strings.Contains(body, "vigil_policy_version_info") {
			t.Fatalf("%d %.300s", code, body)
		}
	})
}

func TestReadiness(t *testing.T) {
	t.Run("a broken policy directory starts the server but not ready", func(t *testing.T) {
		s := newTestServer(t, policyDir(t, map[string]string{"main.cedar": `permit(`}))
		code, body := do(t, s.MainHandler(), "GET", "/readyz", "", "")
		if code != 503 || !strings.Contains(body, "no valid policy set") {
			t.Fatalf("%d %s", code, body)
		}
		if code, _ := do(t, s.MainHandler(), "GET", "/healthz", "", ""); code != 200 {
			t.Fatalf("healthz %d", code)
		}
	})
	t.Run("a valid directory is ready", func(t *testing.T) {
		s := newTestServer(t, policyDir(t, map[string]string{"main.cedar": `permit(principal, action, resource);`}))
		if code, body := do(t, s.MainHandler(), "GET", "/readyz", "", ""); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("without a directory a pushed version survives a restart", func(t *testing.T) {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		s, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		waitReady(t, s)
		if s.Ready() == nil {
			t.Fatal("ready without policies")
		}
		if code, body := do(t, s.AdminHandler(), "POST", "/admin/v1/policies", s.AdminToken, `{"files":{"a.cedar":"permit(principal, action, resource);"}}`); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		s.State().Close()
		s2, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.State().Close()
		waitReady(t, s2)
		if err := s2.Ready(); err != nil || s2.Store().Active().ID != s.Store().Active().ID {
			t.Fatalf("not restored: %v", err)
		}
		if s2.AdminToken != s.AdminToken {
			t.Fatal("the admin token must be reused across restarts")
		}
	})
}
