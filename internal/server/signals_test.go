package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func evaluate(t *testing.T, s *Server, subject string, context string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"subject":{"type":"User","id":%q},"action":{"name":"read"},"resource":{"type":"Doc","id":"1"},"context":%s}`, subject, context)
	return do(t, s.MainHandler(), "POST", "/access/v1/evaluation", "", body)
}

func TestSignalsChangeTheNextDecision(t *testing.T) {
	s := newTestServer(t, policyDir(t, map[string]string{"main.cedar": `
@id("allow-unless-risky") permit(principal, action, resource) unless { context.risk.level == "HIGH" };
@id("non-compliant-devices") forbid(principal, action, resource) when { context has device && context.device has compliant && !context.device.compliant };`}))
	admin := s.AdminHandler()
	signal := func(t *testing.T, body string) {
		t.Helper()
		if code, resp := do(t, admin, "POST", "/admin/v1/signals", s.AdminToken, body); code != 200 {
			t.Fatalf("signal: %d %s", code, resp)
		}
	}
	decision := func(t *testing.T, subject, context string) string {
		t.Helper()
		code, body := evaluate(t, s, subject, context)
		if code != 200 {
			t.Fatalf("authzen: %d %s", code, body)
		}
		return strings.TrimSpace(body)
	}
	const allow, deny = `{"decision":true}`, `{"decision":false}`

	t.Run("risk-level-change reaches context.risk in AuthZEN decisions", func(t *testing.T) {
		if got := decision(t, "alice", `{}`); got != allow {
			t.Fatal(got)
		}
		signal(t, `{"kind":"risk-level-change","subject":{"format":"opaque","id":"alice"},"risk":{"level":"HIGH","reasons":["impossible travel"]}}`)
		if got := decision(t, "alice", `{}`); got != deny {
			t.Fatal(got)
		}
		if got := decision(t, "alice", `{"risk":{"level":"LOW"}}`); got != deny {
			t.Fatalf("a caller must not be able to talk risk down: %s", got)
		}
	})
	t.Run("session-revoked denies tokens issued before it, not after", func(t *testing.T) {
		before := time.Now().Add(-time.Hour).Unix()
		if got := decision(t, "bob", fmt.Sprintf(`{"token":{"iat":%d}}`, before)); got != allow {
			t.Fatal(got)
		}
		signal(t, `{"kind":"session-revoked","subject":{"format":"opaque","id":"bob"},"reason":"stolen laptop"}`)
		if got := decision(t, "bob", fmt.Sprintf(`{"token":{"iat":%d}}`, before)); got != deny {
			t.Fatalf("old token: %s", got)
		}
		if got := decision(t, "bob", `{}`); got != deny {
			t.Fatalf("a token of unknown age cannot prove it is newer: %s", got)
		}
		after := time.Now().Add(2 * time.Second).Unix()
		if got := decision(t, "bob", fmt.Sprintf(`{"token":{"iat":%d}}`, after)); got != allow {
			t.Fatalf("new token: %s", got)
		}
	})
	t.Run("account-disabled denies until account-enabled", func(t *testing.T) {
		signal(t, `{"kind":"account-disabled","subject":{"format":"opaque","id":"carol"}}`)
		if got := decision(t, "carol", `{}`); got != deny {
			t.Fatal(got)
		}
		signal(t, `{"kind":"account-enabled","subject":{"format":"opaque","id":"carol"}}`)
		if got := decision(t, "carol", `{}`); got != allow {
			t.Fatal(got)
		}
	})
	t.Run("device-compliance-change reaches context.device", func(t *testing.T) {
		ctx := `{"device":{"id":"laptop-7"}}`
		if got := decision(t, "dave", ctx); got != allow {
			t.Fatal(got)
		}
		signal(t, `{"kind":"device-compliance-change","subject":{"format":"opaque","id":"laptop-7"},"compliant":false}`)
		_, st := do(t, admin, "GET", "/admin/v1/state?device=laptop-7", s.AdminToken, "")
		if got := decision(t, "dave", ctx); got != deny {
			t.Fatalf("%s (state: %s)", got, st)
		}
	})
	t.Run("the state API shows the facts and the guard", func(t *testing.T) {
		code, body := do(t, admin, "GET", "/admin/v1/state?sub=alice", s.AdminToken, "")
		if code != 200 || !strings.Contains(body, `"level": "HIGH"`) || !strings.Contains(body, "impossible travel") {
			t.Fatalf("%d %s", code, body)
		}
		code, body = do(t, admin, "GET", "/admin/v1/state?sub=bob", s.AdminToken, "")
		if code != 200 || !strings.Contains(body, `"deny": true`) || !strings.Contains(body, "stolen laptop") {
			t.Fatalf("%d %s", code, body)
		}
		if code, _ := do(t, admin, "GET", "/admin/v1/state", s.AdminToken, ""); code != 400 {
			t.Fatalf("empty query: %d", code)
		}
	})
	t.Run("the journal lists recorded signals newest first", func(t *testing.T) {
		code, body := do(t, admin, "GET", "/admin/v1/signals?limit=2", s.AdminToken, "")
		if code != 200 || strings.Count(body, `"seq"`) != 2 || !strings.Contains(body, "device-compliance-change") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("bad signals are refused with a reason", func(t *testing.T) {
		for _, body := range []string{
			`{"kind":"nope","subject":{"format":"opaque","id":"x"}}`,
			`{"kind":"session-revoked"}`,
			`{"kind":"risk-level-change","subject":{"format":"opaque","id":"x"},"risk":{"level":"EXTREME"}}`,
			`{"kind":"session-revoked","subject":{"format":"email","email":"not-an-email"},"bogus":1}`,
		} {
			if code, resp := do(t, admin, "POST", "/admin/v1/signals", s.AdminToken, body); code != 400 {
				t.Errorf("%s: %d %s", body, code, resp)
			}
		}
		if code, _ := do(t, admin, "POST", "/admin/v1/signals", "", `{}`); code != 401 {
			t.Errorf("unauthenticated signal: %d", code)
		}
	})
}
