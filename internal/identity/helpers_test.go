package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const testAudience = "api://vigil"

// t0 is the fake "now" of most tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Private keys are generated once per test binary: RSA generation is slow.
var testPrivateKeys = sync.OnceValue(func() map[string]any {
	gen := func(alg string) any {
		var (
			k   any
			err error
		)
		switch alg {
		case "RS256", "RS256b", "PS256":
			k, err = rsa.GenerateKey(rand.Reader, 2048)
		case "ES256", "ES256b":
			k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case "ES384":
			k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		case "EdDSA":
			_, k, err = ed25519.GenerateKey(rand.Reader)
		}
		if err != nil {
			panic(err)
		}
		return k
	}
	keys := map[string]any{}
	for _, name := range []string{"RS256", "RS256b", "PS256", "ES256", "ES256b", "ES384", "EdDSA"} {
		keys[name] = gen(name)
	}
	return keys
})

// testKey is a signing key of a test issuer.
type testKey struct {
	kid  string
	alg  jwa.SignatureAlgorithm
	priv any
	pub  jwk.Key
}

// newTestKey returns the shared private key named name (see
// testPrivateKeys) for alg, with key id kid.
func newTestKey(t testing.TB, name, alg, kid string) testKey {
	t.Helper()
	priv := testPrivateKeys()[name]
	sa, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		t.Fatalf("unknown alg %s", alg)
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: sa, priv: priv, pub: pub}
}

// testIssuer is an OIDC issuer served by httptest: a discovery document
// and a JWKS whose content, availability and caching headers tests control.
type testIssuer struct {
	srv *httptest.Server
	url string

	mu              sync.Mutex
	keys            []testKey
	down            bool
	cacheControl    string
	discoveryIssuer string // issuer named in the discovery document
	jwksBody        []byte // served instead of the keys when set

	jwksHits      atomic.Int32
	discoveryHits atomic.Int32
}

func newTestIssuer(t testing.TB, keys ...testKey) *testIssuer {
	t.Helper()
	ti := &testIssuer{keys: keys}
	ti.srv = httptest.NewServer(http.HandlerFunc(ti.serve))
	t.Cleanup(ti.srv.Close)
	ti.url = ti.srv.URL
	ti.discoveryIssuer = ti.url
	return ti
}

func (ti *testIssuer) serve(w http.ResponseWriter, r *http.Request) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		ti.discoveryHits.Add(1)
		if ti.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]any{"issuer": ti.discoveryIssuer, "jwks_uri": ti.url + "/jwks"})
	case "/jwks":
		ti.jwksHits.Add(1)
		if ti.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if ti.cacheControl != "" {
			w.Header().Set("Cache-Control", ti.cacheControl)
		}
		if ti.jwksBody != nil {
			_, _ = w.Write(ti.jwksBody)
			return
		}
		set := jwk.NewSet()
		for _, k := range ti.keys {
			_ = set.AddKey(k.pub)
		}
		writeJSON(w, set)
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (ti *testIssuer) setDown(down bool) {
	ti.mu.Lock()
	ti.down = down
	ti.mu.Unlock()
}

func (ti *testIssuer) publish(keys ...testKey) {
	ti.mu.Lock()
	ti.keys = keys
	ti.mu.Unlock()
}

// config trusts the issuer via discovery with at+jwt typing and nested
// roles.
func (ti *testIssuer) config() IssuerConfig {
	return IssuerConfig{
		Issuer:     ti.url,
		Discovery:  Discovery{Enabled: true},
		Audiences:  []string{testAudience},
		TokenType:  "at+jwt",
		RolesClaim: "realm_access.roles",
	}
}

// absent removes a claim in claimsAt overrides.
type absentClaim struct{}

var absent absentClaim

// claimsAt returns valid RFC 9068 claims for ti at now, with overrides
// applied (absent removes a claim).
func (ti *testIssuer) claimsAt(now time.Time, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":          ti.url,
		"sub":          "alice",
		"aud":          testAudience,
		"iat":          now.Unix(),
		"exp":          now.Add(5 * time.Minute).Unix(),
		"jti":          "jti-1",
		"client_id":    "todo-app",
		"scope":        "todos:read todos:write",
		"sid":          "session-1",
		"acr":          "urn:mace:incommon:iap:silver",
		"amr":          []string{"pwd", "otp"},
		"realm_access": map[string]any{"roles": []string{"admin", "viewer"}},
	}
	for k, v := range overrides {
		if v == absent {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// signToken signs claims with k; headers default to typ at+jwt and k's kid
// and may override or add any header (nil value: omit it).
func signToken(t testing.TB, k testKey, claims map[string]any, headers map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return signPayload(t, k, payload, headers)
}

func signPayload(t testing.TB, k testKey, payload []byte, headers map[string]any) string {
	t.Helper()
	h := map[string]any{"typ": "at+jwt", "kid": k.kid}
	for name, v := range headers {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	hdr := jws.NewHeaders()
	for name, v := range h {
		if err := hdr.Set(name, v); err != nil {
			t.Fatalf("set header %s: %v", name, err)
		}
	}
	tok, err := jws.Sign(payload, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// newTestVerifier builds a verifier over issuers with clock clk and closes
// it when the test ends.
func newTestVerifier(t testing.TB, clk *fakeClock, issuers ...IssuerConfig) *Verifier {
	t.Helper()
	return newTestVerifierConfig(t, clk, Config{Issuers: issuers})
}

func newTestVerifierConfig(t testing.TB, clk *fakeClock, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg, &http.Client{Timeout: 5 * time.Second}, nil, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// verifyErr verifies raw and returns the *Error, failing the test when
// verification succeeds or the error has another type.
func verifyErr(t testing.TB, v *Verifier, raw string) *Error {
	t.Helper()
	tok, err := v.Verify(context.Background(), raw)
	if err == nil {
		t.Fatalf("Verify succeeded for subject %q; want an error", tok.Subject)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify error %T %v; want *Error", err, err)
	}
	if e.Code != CodeInvalidToken {
		t.Errorf("Code = %q; want %q", e.Code, CodeInvalidToken)
	}
	if strings.ContainsAny(e.Description, "\"\\") {
		t.Errorf("Description %q contains characters that need escaping", e.Description)
	}
	return e
}

func mustVerify(t testing.TB, v *Verifier, raw string) *Token {
	t.Helper()
	tok, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return tok
}

// decodeSegment decodes segment i of a compact JWS as a JSON object, with
// numbers as their text.
func decodeSegment(t testing.TB, raw string, i int) map[string]any {
	t.Helper()
	seg, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeClaims(seg)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range m {
		if n, ok := v.(json.Number); ok {
			m[k] = n.String()
		}
	}
	return m
}
