package identity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testIntrospection is an RFC 7662 endpoint that knows a fixed set of
// tokens and checks client_secret_basic authentication.
type testIntrospection struct {
	srv          *httptest.Server
	clientID     string
	clientSecret string

	mu     sync.Mutex
	tokens map[string]string // token → JSON response
	status int               // when non-zero, answered instead
	hits   atomic.Int32
}

func newTestIntrospection(t *testing.T) *testIntrospection {
	t.Helper()
	ts := &testIntrospection{clientID: "vigil gw:1", clientSecret: "s3cr=t&", tokens: map[string]string{}}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *testIntrospection) serve(w http.ResponseWriter, r *http.Request) {
	ts.hits.Add(1)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.status != 0 {
		http.Error(w, "unavailable", ts.status)
		return
	}
	// RFC 6749 §2.3.1: credentials are form-encoded, then sent as Basic.
	id, secret, ok := r.BasicAuth()
	if !ok || id != "vigil+gw%3A1" || secret != "s3cr%3Dt%26" {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	resp, ok := ts.tokens[r.PostForm.Get("token")]
	if !ok {
		resp = `{"active":false}`
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(resp))
}

func (ts *testIntrospection) set(token, response string) {
	ts.mu.Lock()
	ts.tokens[token] = response
	ts.mu.Unlock()
}

func (ts *testIntrospection) config(issuer string) IssuerConfig {
	return IssuerConfig{
		Issuer:     issuer,
		Audiences:  []string{testAudience},
		RolesClaim: "groups",
		Introspection: &IntrospectionConfig{
			Endpoint:     ts.srv.URL + "/introspect",
			ClientID:     ts.clientID,
			ClientSecret: ts.clientSecret,
		},
	}
}

const opaqueIssuer = "https://as.example.com"

func TestIntrospection(t *testing.T) {
	ts := newTestIntrospection(t)
	clk := newClock()
	v := newTestVerifier(t, clk, ts.config(opaqueIssuer))
	exp := t0.Add(10 * time.Second).Unix()
	ts.set("active-token", `{"active":true,"sub":"bob","scope":"read write","client_id":"cli",
		"iss":"https://as.example.com","aud":"api://vigil","groups":["ops"],"exp":`+itoa(exp)+`}`)
	ts.set("long-lived", `{"active":true,"sub":"carol"}`)
	ts.set("wrong-iss", `{"active":true,"sub":"x","iss":"https://other.example"}`)
	ts.set("wrong-aud", `{"active":true,"sub":"x","aud":["api://other"]}`)
	ts.set("no-sub", `{"active":true}`)
	ts.set("active-string", `{"active":"true","sub":"x"}`)
	ts.set("expired", `{"active":true,"sub":"x","exp":`+itoa(t0.Add(-time.Hour).Unix())+`}`)
	ts.set("huge", `{"active":true,"sub":"x","pad":"`+strings.Repeat("x", maxIntrospectionBytes)+`"}`)

	t.Run("an active token yields its claims", func(t *testing.T) {
		tok := mustVerify(t, v, "active-token")
		if tok.Subject != "bob" || tok.ClientID != "cli" || !tok.Introspected ||
			!slices.Equal(tok.Scopes, []string{"read", "write"}) || !slices.Equal(tok.Roles, []string{"ops"}) ||
			tok.Issuer != opaqueIssuer || !tok.Expiry.Equal(t0.Add(10*time.Second)) {
			t.Errorf("token = %+v", tok)
		}
	})
	t.Run("a second use within the TTL is answered from the cache", func(t *testing.T) {
		before := ts.hits.Load()
		mustVerify(t, v, "active-token")
		if ts.hits.Load() != before {
			t.Error("introspection endpoint called again")
		}
	})
	t.Run("the cache never outlives the token's exp", func(t *testing.T) {
		before := ts.hits.Load()
		clk.Advance(11 * time.Second)    // past exp (10s), before cache_ttl (30s)
		mustVerify(t, v, "active-token") // within leeway, so still accepted
		if ts.hits.Load() != before+1 {
			t.Error("introspection endpoint not called again after exp")
		}
	})
	t.Run("the cache never outlives cache_ttl", func(t *testing.T) {
		mustVerify(t, v, "long-lived")
		before := ts.hits.Load()
		clk.Advance(DefaultIntrospectionCacheTTL)
		mustVerify(t, v, "long-lived")
		if ts.hits.Load() != before+1 {
			t.Error("introspection endpoint not called again after cache_ttl")
		}
	})
	t.Run("PurgeIntrospectionCache forces a new introspection", func(t *testing.T) {
		mustVerify(t, v, "long-lived")
		before := ts.hits.Load()
		v.PurgeIntrospectionCache()
		mustVerify(t, v, "long-lived")
		if ts.hits.Load() != before+1 {
			t.Error("introspection endpoint not called after purge")
		}
	})

	rejects := []struct {
		name      string
		token     string
		wantDesc  string
		temporary bool
	}{
		{"an inactive token is rejected", "unknown-token", DescInactive, false},
		{"a response from another issuer is rejected", "wrong-iss", DescIssuer, false},
		{"a response for another audience is rejected", "wrong-aud", DescAudience, false},
		{"a response without sub is rejected", "no-sub", DescMissingClaim, false},
		{"an expired token reported active is rejected", "expired", DescExpired, false},
		{"a response whose active is not a boolean is rejected", "active-string", DescUnavailable, true},
		{"an oversized response is rejected", "huge", DescUnavailable, true},
		{"a token with characters outside b64token is not sent", "bad token", DescMalformed, false},
	}
	for _, tc := range rejects {
		t.Run(tc.name, func(t *testing.T) {
			e := verifyErr(t, v, tc.token)
			if e.Description != tc.wantDesc || e.Temporary != tc.temporary {
				t.Errorf("error = %v (temporary %v); want %q (temporary %v)", e, e.Temporary, tc.wantDesc, tc.temporary)
			}
		})
	}
}

func TestIntrospectionFailuresDeny(t *testing.T) {
	tests := []struct {
		name   string
		status int
		config func(*IssuerConfig)
	}{
		{name: "an endpoint answering 500 denies", status: http.StatusInternalServerError},
		{name: "an endpoint refusing our credentials denies",
			config: func(ic *IssuerConfig) { ic.Introspection.ClientSecret = "wrong" }},
		{name: "an unreachable endpoint denies",
			config: func(ic *IssuerConfig) { ic.Introspection.Endpoint = "http://127.0.0.1:1/introspect" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestIntrospection(t)
			ts.set("tok", `{"active":true,"sub":"bob"}`)
			ts.status = tc.status
			ic := ts.config(opaqueIssuer)
			if tc.config != nil {
				tc.config(&ic)
			}
			v := newTestVerifier(t, newClock(), ic)
			e := verifyErr(t, v, "tok")
			if e.Description != DescUnavailable || !e.Temporary {
				t.Errorf("error = %v; want temporary unavailable", e)
			}
			if v.icache.len() != 0 {
				t.Error("a failed introspection was cached")
			}
		})
	}
}

func TestIntrospectionSharesConcurrentCalls(t *testing.T) {
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		arrived <- struct{}{}
		<-release
		_, _ = w.Write([]byte(`{"active":true,"sub":"bob"}`))
	}))
	t.Cleanup(srv.Close)
	ic := IssuerConfig{Issuer: opaqueIssuer, Audiences: []string{testAudience},
		Introspection: &IntrospectionConfig{Endpoint: srv.URL, ClientID: "c", ClientSecret: "s"}}
	v := newTestVerifier(t, newClock(), ic)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), "shared-token")
			errs <- err
		})
	}
	// Callers that arrive while the request is in flight join it; callers
	// that arrive after it find the cached result. Either way: one request.
	<-arrived
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	if got := hits.Load(); got != 1 {
		t.Errorf("introspection endpoint called %d times; want 1", got)
	}
}

func TestJWTsAreNeverIntrospected(t *testing.T) {
	k := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k)
	ts := newTestIntrospection(t)
	ic := ts.config(ti.url)
	ic.Discovery = Discovery{Enabled: true}
	ic.TokenType = "at+jwt"
	v := newTestVerifier(t, newClock(), ic)
	mustVerify(t, v, signToken(t, k, ti.claimsAt(t0, nil), nil))
	verifyErr(t, v, signToken(t, k, ti.claimsAt(t0, map[string]any{"aud": "x"}), nil))
	if ts.hits.Load() != 0 {
		t.Errorf("introspection endpoint called %d times for JWTs", ts.hits.Load())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
