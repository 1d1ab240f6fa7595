package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/signal"
	"github.com/vigil-authz/vigil/internal/signal/ssftest"
)

// TestSSFEndToEnd drives a real SSF transmitter (signed SETs, JWKS,
// configuration and poll endpoints) against a full Vigil: a pushed CAEP
// session-revoked and a polled RISC account-disabled each change the next
// gateway decision.
func TestSSFEndToEnd(t *testing.T) {
	const audience = "https://vigil.test"
	pushTx := ssftest.New(t, audience)
	pollTx := ssftest.New(t, audience)
	gs := startGatewayServer(t, map[string]string{"main.cedar": `@id("all") permit(principal, action, resource);`}, func(c *config.Config) {
		c.Signals.Transmitters = []signal.TransmitterConfig{
			{Name: "push-idp", Issuer: pushTx.Issuer, ConfigurationURL: pushTx.ConfigurationURL(), Audience: audience,
				Push: &signal.PushConfig{Authorization: "Bearer push-secret-0123456789"}},
			{Name: "poll-idp", Issuer: pollTx.Issuer, ConfigurationURL: pollTx.ConfigurationURL(), Audience: audience,
				Poll: &signal.PollConfig{Endpoint: pollTx.PollURL(), Token: pollTx.PollToken, Interval: 50 * time.Millisecond}},
		}
	})
	token := func(sub string) string {
		tok, err := gs.issuer.Mint(map[string]any{"sub": sub, "aud": "api", "iat": time.Now().Add(-time.Minute).Unix(), "jti": sub, "client_id": "c"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	status := func(tok string) int {
		req, _ := http.NewRequest("GET", gs.gwURL+"/docs/1", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	alice, bob := token("alice"), token("bob")
	if status(alice) != 200 || status(bob) != 200 {
		t.Fatal("both users must be allowed before any signal")
	}

	t.Run("a pushed session-revoked is in force once answered 202", func(t *testing.T) {
		set := pushTx.Sign(ssftest.Event{Type: ssftest.SessionRevoked,
			SubID:   map[string]any{"format": "iss_sub", "iss": gs.issuer.Issuer(), "sub": "alice"},
			Payload: map[string]any{"reason_admin": map[string]any{"en": "stolen laptop"}}})
		var code int
		var body []byte
		deadline := time.Now().Add(10 * time.Second)
		for { // 503 until the receiver has read the transmitter's keys
			var err error
			code, body, err = pushTx.Push(context.Background(), gs.mainURL+PathSSFPush, "Bearer push-secret-0123456789", set)
			if err != nil {
				t.Fatal(err)
			}
			if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if code != http.StatusAccepted {
			t.Fatalf("push: %d %s", code, body)
		}
		if got := status(alice); got != http.StatusUnauthorized {
			t.Fatalf("alice after revocation: %d", got)
		}
		if status(bob) != 200 {
			t.Fatal("bob must be unaffected")
		}
	})
	t.Run("a push with the wrong authorization is refused", func(t *testing.T) {
		set := pushTx.Sign(ssftest.Event{Type: ssftest.SessionRevoked, SubID: map[string]any{"format": "opaque", "id": "bob"}})
		code, body, err := pushTx.Push(context.Background(), gs.mainURL+PathSSFPush, "Bearer wrong", set)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusForbidden && code != http.StatusUnauthorized {
			t.Fatalf("%d %s", code, body)
		}
		if status(bob) != 200 {
			t.Fatal("a refused push must change nothing")
		}
	})
	t.Run("a polled account-disabled is applied and acknowledged", func(t *testing.T) {
		set := pollTx.Sign(ssftest.Event{Type: ssftest.AccountDisabled, JTI: "dis-1",
			SubID: map[string]any{"format": "iss_sub", "iss": gs.issuer.Issuer(), "sub": "bob"}})
		pollTx.Enqueue("dis-1", set)
		deadline := time.Now().Add(10 * time.Second)
		for status(bob) == 200 {
			if time.Now().After(deadline) {
				t.Fatal("the polled signal was never applied")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := status(bob); got != http.StatusForbidden {
			t.Fatalf("a disabled account gets 403, got %d", got)
		}
		for !strings.Contains(strings.Join(pollTx.Acked(), ","), "dis-1") {
			if time.Now().After(deadline) {
				t.Fatal("the applied SET was never acknowledged")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
