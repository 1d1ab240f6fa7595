package gateway

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/engine"
)

func TestProxyDecisions(t *testing.T) {
	h := newHarness(t)
	alice := h.token("alice", []string{"member"}, nil)
	aliceMFA := h.token("alice", []string{"member"}, map[string]any{"acr": "urn:example:mfa"})
	nobody := h.token("nobody", nil, nil)
	admin := h.token("root", []string{"admin"}, nil)
	expired, err := h.issuer.Mint(map[string]any{"sub": "alice", "aud": "todo-api", "client_id": "c", "exp": time.Now().Add(-time.Hour).Unix()}, 0)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		method     string
		path       string
		header     http.Header
		wantStatus int
		wantAuth   []string // substrings of WWW-Authenticate
	}{
		{name: "a member reads a todo", method: "GET", path: "/todos/1", header: bearerHeader(alice), wantStatus: 200},
		{name: "a member without MFA is asked to step up before deleting", method: "DELETE", path: "/todos/1", header: bearerHeader(alice), wantStatus: 401,
			wantAuth: []string{`Bearer realm="vigil"`, `error="insufficient_user_authentication"`, `acr_values="urn:example:mfa"`, `max_age="300"`}},
		{name: "a member with MFA deletes a todo", method: "DELETE", path: "/todos/1", header: bearerHeader(aliceMFA), wantStatus: 200},
		{name: "a user without roles is denied", method: "GET", path: "/todos/1", header: bearerHeader(nobody), wantStatus: 403},
		{name: "an admin reaches the admin route", method: "GET", path: "/admin", header: bearerHeader(admin), wantStatus: 200},
		{name: "a member does not reach the admin route", method: "GET", path: "/admin", header: bearerHeader(alice), wantStatus: 403},
		{name: "a request without a token is challenged", method: "GET", path: "/todos/1", wantStatus: 401, wantAuth: []string{`Bearer realm="vigil"`}},
		{name: "a malformed token is rejected as invalid", method: "GET", path: "/todos/1", header: bearerHeader("not-a-token"), wantStatus: 401,
			wantAuth: []string{`error="invalid_token"`, `error_description="The access token is malformed"`}},
		{name: "an expired token is rejected as invalid", method: "GET", path: "/todos/1", header: bearerHeader(expired), wantStatus: 401,
			wantAuth: []string{`error="invalid_token"`, `error_description="The access token expired"`}},
		{name: "two Authorization headers are a bad request", method: "GET", path: "/todos/1",
			header: http.Header{"Authorization": {"Bearer " + alice, "Bearer " + alice}}, wantStatus: 400, wantAuth: []string{`error="invalid_request"`}},
		{name: "an anonymous route admits a request without a token", method: "GET", path: "/healthz", wantStatus: 200},
		{name: "an anonymous route still rejects an invalid token", method: "GET", path: "/healthz", header: bearerHeader("x.y.z"), wantStatus: 401},
		{name: "an unmatched path is denied", method: "GET", path: "/nothing/here", header: bearerHeader(admin), wantStatus: 403},
		{name: "an unmatched method is denied", method: "POST", path: "/todos/1", header: bearerHeader(admin), wantStatus: 403},
		{name: "an encoded dot-dot segment is rejected", method: "GET", path: "/todos/%2e%2e/admin", header: bearerHeader(admin), wantStatus: 400},
		{name: "a dot-dot segment is rejected", method: "GET", path: "/todos/../admin", header: bearerHeader(admin), wantStatus: 400},
		{name: "an empty leading segment is rejected", method: "GET", path: "//admin", header: bearerHeader(admin), wantStatus: 400},
		{name: "an encoded slash is rejected", method: "GET", path: "/todos/a%2Fb", header: bearerHeader(admin), wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.request(false, tt.method, tt.path, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			rid := resp.Header.Get("X-Request-Id")
			if !validRequestID(rid) {
				t.Errorf("X-Request-Id = %q, want a generated id", rid)
			}
			auth := resp.Header.Get("WWW-Authenticate")
			for _, want := range tt.wantAuth {
				if !strings.Contains(auth, want) {
					t.Errorf("WWW-Authenticate = %q, want it to contain %q", auth, want)
				}
			}
			if tt.wantStatus == 200 {
				if rid == "from-upstream" {
					t.Errorf("the upstream's X-Request-Id replaced the gateway's")
				}
				return
			}
			p := problemBody(t, resp, body)
			if p["status"] != float64(tt.wantStatus) || p["request_id"] != rid || p["instance"] != "urn:vigil:request:"+rid {
				t.Errorf("problem = %v, want status %d and request id %q", p, tt.wantStatus, rid)
			}
			for _, secret := range []string{"members-read", "delete-needs-mfa", "admins", "policy"} {
				if strings.Contains(string(body), secret) {
					t.Errorf("problem body %s reveals policy internals (%q)", body, secret)
				}
			}
		})
	}
}

func TestDenialsAreLoggedWithPolicies(t *testing.T) {
	h := newHarness(t)
	resp, _ := h.request(false, "DELETE", "/todos/1", bearerHeader(h.token("alice", []string{"member"}, nil)))
	rid := resp.Header.Get("X-Request-Id")
	var found bool
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"decision"`) && strings.Contains(line, rid) {
			found = true
			if !strings.Contains(line, "delete-needs-mfa") || !strings.Contains(line, `"outcome":"step_up"`) {
				t.Errorf("decision log line lacks the determining policy or outcome: %s", line)
			}
		}
	}
	if !found {
		t.Fatalf("no decision log line with request id %s", rid)
	}
}

func TestHeaderHygiene(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Options) {
		c.Upstreams[0].PassAuthorization = new(bool) // false
	})
	alice := h.token("alice", []string{"member", "writer"}, map[string]any{"sid": "sess-1"})
	spoofed := http.Header{
		"Authorization":     {"Bearer " + alice},
		"X-Forwarded-For":   {"6.6.6.6"},
		"X-Forwarded-Host":  {"evil.example"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Port":  {"443"},
		"X-Real-Ip":         {"6.6.6.6"},
		"Forwarded":         {"for=6.6.6.6"},
		"X-Vigil-Subject":   {"admin"},
		"X-Vigil-Roles":     {"admin"},
		"X-Vigil-Session":   {"stolen"},
		"X-Device-Id":       {"trusted-laptop"},
		"X-Request-Id":      {"client-chosen"},
		"Connection":        {"X-Secret-Hop"},
		"X-Secret-Hop":      {"hop"},
	}

	t.Run("spoofed forwarding and identity headers from an untrusted client are replaced", func(t *testing.T) {
		resp, body := h.request(false, "GET", "/todos/1", spoofed)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		e := decodeEcho(t, body)
		want := map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Proto": "http",
			"X-Forwarded-Host":  strings.TrimPrefix(h.url, "http://"),
			"X-Vigil-Subject":   "alice",
			"X-Vigil-Roles":     "member,writer",
			"X-Vigil-Session":   "sess-1",
			"X-Request-Id":      resp.Header.Get("X-Request-Id"),
		}
		for k, v := range want {
			if got := e.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want [%q]", k, got, v)
			}
		}
		for _, k := range []string{"Authorization", "Forwarded", "X-Real-Ip", "X-Forwarded-Port", "X-Device-Id", "X-Secret-Hop"} {
			if v := e.Header.Values(k); len(v) > 0 {
				t.Errorf("upstream received %s = %q, want it removed", k, v)
			}
		}
		if resp.Header.Get("X-Request-Id") == "client-chosen" {
			t.Errorf("an untrusted client chose the request id")
		}
	})

	t.Run("a trusted proxy's forwarding headers are honoured and extended", func(t *testing.T) {
		hdr := spoofed.Clone()
		hdr.Set("X-Forwarded-For", "198.51.100.7, 10.0.0.1")
		hdr.Set("X-Request-Id", "edge-123")
		resp, body := h.request(true, "GET", "/todos/1", hdr)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		e := decodeEcho(t, body)
		if got := e.Header.Get("X-Forwarded-For"); got != "198.51.100.7, 10.0.0.1, "+trustedAddr {
			t.Errorf("X-Forwarded-For = %q", got)
		}
		if got := e.Header.Get("X-Forwarded-Host"); got != "evil.example" {
			t.Errorf("X-Forwarded-Host = %q, want the proxy's value", got)
		}
		if got := e.Header.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("X-Forwarded-Proto = %q, want https", got)
		}
		if got := e.Header.Get("X-Device-Id"); got != "trusted-laptop" {
			t.Errorf("X-Device-Id = %q, want it kept from a trusted proxy", got)
		}
		if got := e.Header.Get("X-Vigil-Subject"); got != "alice" {
			t.Errorf("X-Vigil-Subject = %q, want the verified subject even from a trusted proxy", got)
		}
		if got := resp.Header.Get("X-Request-Id"); got != "edge-123" {
			t.Errorf("X-Request-Id = %q, want the trusted proxy's", got)
		}
	})

	t.Run("identity headers are removed from anonymous requests", func(t *testing.T) {
		resp, body := h.request(false, "GET", "/healthz", http.Header{"X-Vigil-Subject": {"admin"}})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if v := decodeEcho(t, body).Header.Values("X-Vigil-Subject"); len(v) > 0 {
			t.Errorf("anonymous request reached the upstream with X-Vigil-Subject %q", v)
		}
	})

	t.Run("the upstream sees the path exactly as sent", func(t *testing.T) {
		resp, body := h.request(false, "GET", "/todos/a%20b?x=1&y=%2F", bearerHeader(alice))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if got := decodeEcho(t, body).RequestURI; got != "/todos/a%20b?x=1&y=%2F" {
			t.Errorf("upstream request URI = %q", got)
		}
	})
}

func TestAuthorizationForwardedByDefault(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", []string{"member"}, nil)
	_, body := h.request(false, "GET", "/todos/1", bearerHeader(tok))
	if got := decodeEcho(t, body).Header.Get("Authorization"); got != "Bearer "+tok {
		t.Errorf("upstream Authorization = %q, want the client's token", got)
	}
}

func TestRequestBodyIsForwarded(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest("PUT", h.url+"/todos/7", strings.NewReader(`{"title":"x"}`))
	req.Header.Set("Authorization", "Bearer "+h.token("root", []string{"admin"}, nil))
	resp, err := client(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if e := decodeEcho(t, body); e.Method != "PUT" || e.Body != `{"title":"x"}` {
		t.Errorf("upstream got %s with body %q", e.Method, e.Body)
	}
}

func TestContextFromTrustedProxy(t *testing.T) {
	h := newHarness(t)
	alice := h.token("alice", []string{"member"}, nil)
	tests := []struct {
		name    string
		trusted bool
		xff     string
		want    int
	}{
		{name: "a client inside the office network reaches the office todo through a trusted proxy", trusted: true, xff: "203.0.113.9", want: 200},
		{name: "a client outside the office network is denied", trusted: true, xff: "198.51.100.1", want: 403},
		{name: "the rightmost untrusted address is the client", trusted: true, xff: "203.0.113.9, 198.51.100.1", want: 403},
		{name: "a spoofed X-Forwarded-For from an untrusted peer is ignored", trusted: false, xff: "203.0.113.9", want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := bearerHeader(alice)
			hdr.Set("X-Forwarded-For", tt.xff)
			resp, body := h.request(tt.trusted, "GET", "/todos/office", hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
		})
	}
}

func TestEnrichSignalsReachPolicies(t *testing.T) {
	h := newHarness(t, func(_ *Config, o *Options) {
		o.Enrich = func(v engine.View, req *decision.Request, sig *Signals) {
			if req.Identity != nil && req.Identity.Subject == "mallory" {
				sig.Risk = RiskSignals{Score: 90, Level: "HIGH", Reasons: []string{"impossible-travel"}}
			}
		}
	})
	for _, tt := range []struct {
		sub  string
		want int
	}{{"alice", 200}, {"mallory", 403}} {
		t.Run(tt.sub+" is decided with live risk", func(t *testing.T) {
			resp, body := h.request(false, "GET", "/todos/1", bearerHeader(h.token(tt.sub, []string{"member"}, nil)))
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
		})
	}
}

func TestRevocationGuards(t *testing.T) {
	revokedAt := time.Unix(1767225600, 0)
	h := newHarness(t)
	h.gw.decide = func(v engine.View, req decision.Request) decision.Result {
		if req.Identity != nil && strings.HasPrefix(req.Identity.Subject, "revoked") {
			return decision.Result{Guard: "session-revoked", RevokedAt: revokedAt}
		}
		if req.Identity != nil && req.Identity.Subject == "disabled" {
			return decision.Result{Guard: "subject-disabled"}
		}
		return v.Decide(req)
	}
	claimsJSON := `{"access_token":{"nbf":{"essential":true,"value":"1767225600"}}}`
	tests := []struct {
		name     string
		tok      string
		want     int
		wantAuth string
	}{
		{name: "a CAE-capable client gets a claims challenge", tok: h.token("revoked-cae", []string{"member"}, map[string]any{"xms_cc": []string{"cp1"}}),
			want: 401, wantAuth: `Bearer realm="vigil", error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(claimsJSON)) + `"`},
		{name: "another client gets invalid_token", tok: h.token("revoked-plain", []string{"member"}, nil),
			want: 401, wantAuth: `Bearer realm="vigil", error="invalid_token", error_description="The access token has been revoked"`},
		{name: "a guard without a revocation time is a plain denial", tok: h.token("disabled", []string{"member"}, nil), want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.request(false, "GET", "/todos/1", bearerHeader(tt.tok))
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantAuth {
				t.Errorf("WWW-Authenticate = %q\nwant %q", got, tt.wantAuth)
			}
		})
	}
	t.Run("the claims challenge decodes to the revocation time", func(t *testing.T) {
		raw, err := base64.StdEncoding.DecodeString(claimsChallenge(revokedAt))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]map[string]map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if nbf := doc["access_token"]["nbf"]; nbf["essential"] != true || nbf["value"] != "1767225600" {
			t.Errorf("claims = %s", raw)
		}
	})
}

func TestUpstreamFailures(t *testing.T) {
	h := newHarness(t)
	alice := h.token("alice", []string{"member"}, nil)
	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "an upstream that is down answers 502", path: "/down", want: 502},
		{name: "an upstream that hangs before its headers answers 504", path: "/slow", want: 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.request(false, "GET", tt.path, bearerHeader(alice))
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			problemBody(t, resp, body)
		})
	}
}

func TestNoActivePolicyFailsClosed(t *testing.T) {
	h := newHarness(t, func(_ *Config, o *Options) {
		o.Views = func() engine.View { return engine.View{} }
	})
	resp, body := h.request(false, "GET", "/healthz", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503: %s", resp.StatusCode, body)
	}
}
