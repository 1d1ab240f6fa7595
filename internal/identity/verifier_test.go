package identity

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

func TestVerifyAcceptsValidTokens(t *testing.T) {
	tests := []struct {
		name    string
		keyName string
		alg     string
	}{
		{"an RS256 token is accepted", "RS256", "RS256"},
		{"a PS256 token is accepted", "PS256", "PS256"},
		{"an ES256 token is accepted", "ES256", "ES256"},
		{"an EdDSA token is accepted", "EdDSA", "EdDSA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newTestKey(t, tc.keyName, tc.alg, "k1")
			ti := newTestIssuer(t, k)
			clk := newClock()
			v := newTestVerifier(t, clk, ti.config())
			v.Start(context.Background())
			raw := signToken(t, k, ti.claimsAt(clk.Now(), nil), nil)

			tok := mustVerify(t, v, raw)

			want := Token{
				Issuer: ti.url, Subject: "alice", Audience: []string{testAudience},
				IssuedAt: t0, Expiry: t0.Add(5 * time.Minute),
				JTI: "jti-1", SessionID: "session-1", ClientID: "todo-app",
				Scopes: []string{"todos:read", "todos:write"},
				ACR:    "urn:mace:incommon:iap:silver", AMR: []string{"pwd", "otp"},
				Roles: []string{"admin", "viewer"}, PrincipalType: "User", RoleType: "Role",
				RawHash: sha256.Sum256([]byte(raw)),
			}
			checkToken(t, tok, want)
			if tok.Claims["client_id"] != "todo-app" {
				t.Errorf("Claims[client_id] = %v", tok.Claims["client_id"])
			}
			wantExp := json.Number(strconv.FormatInt(t0.Add(5*time.Minute).Unix(), 10))
			if n, ok := tok.Claims["exp"].(json.Number); !ok || n != wantExp {
				t.Errorf("Claims[exp] = %#v; want json.Number %s", tok.Claims["exp"], wantExp)
			}
		})
	}
}

func checkToken(t *testing.T, got *Token, want Token) {
	t.Helper()
	eq := func(name string, g, w any) {
		t.Helper()
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if string(gj) != string(wj) {
			t.Errorf("%s = %s; want %s", name, gj, wj)
		}
	}
	eq("Issuer", got.Issuer, want.Issuer)
	eq("Subject", got.Subject, want.Subject)
	eq("Audience", got.Audience, want.Audience)
	eq("IssuedAt", got.IssuedAt, want.IssuedAt)
	eq("NotBefore", got.NotBefore, want.NotBefore)
	eq("Expiry", got.Expiry, want.Expiry)
	eq("JTI", got.JTI, want.JTI)
	eq("SessionID", got.SessionID, want.SessionID)
	eq("ClientID", got.ClientID, want.ClientID)
	eq("Scopes", got.Scopes, want.Scopes)
	eq("ACR", got.ACR, want.ACR)
	eq("AMR", got.AMR, want.AMR)
	eq("Roles", got.Roles, want.Roles)
	eq("PrincipalType", got.PrincipalType, want.PrincipalType)
	eq("RoleType", got.RoleType, want.RoleType)
	eq("RawHash", got.RawHash, want.RawHash)
	eq("Introspected", got.Introspected, want.Introspected)
}

func TestVerifyAcceptsWithinRules(t *testing.T) {
	k := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k)
	tests := []struct {
		name      string
		overrides map[string]any
		headers   map[string]any
		cfg       func(*IssuerConfig)
	}{
		{name: "a token expired less than the leeway ago is accepted",
			overrides: map[string]any{"exp": t0.Add(-20 * time.Second).Unix(), "iat": t0.Add(-time.Hour).Unix()}},
		{name: "a token whose nbf is within the leeway is accepted",
			overrides: map[string]any{"nbf": t0.Add(20 * time.Second).Unix()}},
		{name: "a token issued slightly in the future is accepted",
			overrides: map[string]any{"iat": t0.Add(20 * time.Second).Unix()}},
		{name: "a fractional NumericDate is accepted",
			overrides: map[string]any{"exp": float64(t0.Add(time.Minute).Unix()) + 0.5}},
		{name: "an audience array containing ours is accepted",
			overrides: map[string]any{"aud": []string{"other", testAudience}}},
		{name: "typ with the application/ prefix and other case is accepted",
			headers: map[string]any{"typ": "application/AT+JWT"}},
		{name: "typ JWT is accepted when no token_type is configured",
			headers: map[string]any{"typ": "JWT"},
			cfg:     func(ic *IssuerConfig) { ic.TokenType = "" }},
		{name: "a token without typ is accepted when no token_type is configured",
			headers: map[string]any{"typ": nil},
			cfg:     func(ic *IssuerConfig) { ic.TokenType = "" }},
		{name: "RFC 9068 claims are optional when no token_type is configured",
			overrides: map[string]any{"jti": absent, "client_id": absent, "iat": absent},
			cfg:       func(ic *IssuerConfig) { ic.TokenType = "" }},
		{name: "a token without kid is verified against the issuer's keys",
			headers: map[string]any{"kid": nil}},
		{name: "unknown header parameters such as jku are ignored",
			headers: map[string]any{"jku": "https://attacker.example/jwks", "x5u": "https://attacker.example/cert"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			ic := ti.config()
			if tc.cfg != nil {
				tc.cfg(&ic)
			}
			v := newTestVerifier(t, clk, ic)
			v.Start(context.Background())
			mustVerify(t, v, signToken(t, k, ti.claimsAt(t0, tc.overrides), tc.headers))
		})
	}
}

func TestVerifyRejectsInvalidTokens(t *testing.T) {
	k := newTestKey(t, "RS256", "RS256", "k1")
	otherKey := newTestKey(t, "RS256b", "RS256", "k1") // same kid, different key
	ecKey := newTestKey(t, "ES256b", "ES256", "attacker")
	ti := newTestIssuer(t, k)
	other := newTestIssuer(t, newTestKey(t, "ES256", "ES256", "other-k"))
	claims := func(o map[string]any) map[string]any { return ti.claimsAt(t0, o) }

	tests := []struct {
		name     string
		token    func(t *testing.T) string
		wantDesc string
		reason   string // substring of Reason
	}{
		{
			name: "an unsigned token with alg none is rejected",
			token: func(t *testing.T) string {
				h := b64json(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "k1"})
				return h + "." + b64json(t, claims(nil)) + "."
			},
			wantDesc: DescAlgorithm, reason: `alg "none"`,
		},
		{
			name: "an HS256 token signed with the issuer's RSA public key is rejected",
			token: func(t *testing.T) string {
				return signToken(t, hmacKeyFromRSA(t, k), claims(nil), nil)
			},
			wantDesc: DescAlgorithm, reason: `alg "HS256"`,
		},
		{
			name: "an expired token is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"exp": t0.Add(-31 * time.Second).Unix(), "iat": t0.Add(-time.Hour).Unix()}), nil)
			},
			wantDesc: DescExpired,
		},
		{
			name: "a token whose nbf is in the future is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"nbf": t0.Add(2 * time.Minute).Unix()}), nil)
			},
			wantDesc: DescNotYetValid,
		},
		{
			name: "a token issued in the future is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"iat": t0.Add(2 * time.Minute).Unix()}), nil)
			},
			wantDesc: DescIssuedInFuture,
		},
		{
			name: "a token from an unknown issuer is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"iss": "https://evil.example"}), nil)
			},
			wantDesc: DescUnknownIssuer,
		},
		{
			name: "an issuer whose iss differs only by a trailing slash is unknown",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"iss": ti.url + "/"}), nil)
			},
			wantDesc: DescUnknownIssuer,
		},
		{
			name: "a token signed by one issuer's key claiming another trusted issuer is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"iss": other.url}), map[string]any{"typ": "at+jwt"})
			},
			wantDesc: DescKeyNotFound,
		},
		{
			name: "a token for another audience is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"aud": []string{"api://other"}}), nil)
			},
			wantDesc: DescAudience,
		},
		{
			name: "a token without aud is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"aud": absent}), nil)
			},
			wantDesc: DescAudience,
		},
		{
			name: "a token without exp is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"exp": absent}), nil)
			},
			wantDesc: DescMissingClaim, reason: "exp",
		},
		{
			name: "a token without sub is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"sub": absent}), nil)
			},
			wantDesc: DescMissingClaim, reason: "sub",
		},
		{
			name: "an at+jwt token without jti is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"jti": absent}), nil)
			},
			wantDesc: DescMissingClaim, reason: "jti",
		},
		{
			name: "a token whose typ is JWT is rejected when at+jwt is required",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(nil), map[string]any{"typ": "JWT"})
			},
			wantDesc: DescType,
		},
		{
			name: "an ID token without typ is rejected when at+jwt is required",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"nonce": "n"}), map[string]any{"typ": nil})
			},
			wantDesc: DescType,
		},
		{
			name: "a security event token presented as an access token is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"events": map[string]any{
					"https://schemas.openid.net/secevent/caep/event-type/session-revoked": map[string]any{},
				}}), map[string]any{"typ": "secevent+jwt"})
			},
			wantDesc: DescType, reason: "secevent+jwt",
		},
		{
			name: "a token with an events claim is rejected even with typ at+jwt",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"events": map[string]any{}}), nil)
			},
			wantDesc: DescType, reason: "events",
		},
		{
			name: "a token with a crit header is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(nil), map[string]any{"crit": []string{"exp"}, "exp": 1})
			},
			wantDesc: DescUnsupported, reason: "crit",
		},
		{
			name: "a nested token (cty JWT) is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(nil), map[string]any{"cty": "JWT"})
			},
			wantDesc: DescUnsupported, reason: "cty",
		},
		{
			name: "a token with a tampered payload is rejected",
			token: func(t *testing.T) string {
				raw := signToken(t, k, claims(nil), nil)
				parts := strings.Split(raw, ".")
				parts[1] = b64json(t, claims(map[string]any{"sub": "mallory"}))
				return strings.Join(parts, ".")
			},
			wantDesc: DescSignature,
		},
		{
			name: "a token signed by another key under the issuer's kid is rejected",
			token: func(t *testing.T) string {
				return signToken(t, otherKey, claims(nil), nil)
			},
			wantDesc: DescSignature,
		},
		{
			name: "a token carrying its own key in a jwk header is rejected",
			token: func(t *testing.T) string {
				return signToken(t, ecKey, claims(nil), map[string]any{"jwk": ecKey.pub, "kid": "attacker"})
			},
			wantDesc: DescKeyNotFound,
		},
		{
			name: "an ES256 token naming an RSA key is rejected",
			token: func(t *testing.T) string {
				return signToken(t, ecKey, claims(nil), map[string]any{"kid": "k1"})
			},
			wantDesc: DescKeyNotFound,
		},
		{
			name: "a token with duplicate claims is rejected",
			token: func(t *testing.T) string {
				base, _ := json.Marshal(claims(nil))
				dup := `{"sub":"mallory",` + string(base[1:])
				return signPayload(t, k, []byte(dup), nil)
			},
			wantDesc: DescMalformed, reason: "invalid claims",
		},
		{
			name: "a token whose claims are not UTF-8 is rejected",
			token: func(t *testing.T) string {
				base, _ := json.Marshal(claims(nil))
				bad := `{"name":"` + "\xff\xfe" + `",` + string(base[1:])
				return signPayload(t, k, []byte(bad), nil)
			},
			wantDesc: DescMalformed,
		},
		{
			name: "a token whose exp is a string is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"exp": "tomorrow"}), nil)
			},
			wantDesc: DescMalformed, reason: `"exp"`,
		},
		{
			name: "a token whose exp is beyond the year 9999 is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"exp": 1e300}), nil)
			},
			wantDesc: DescMalformed, reason: `"exp"`,
		},
		{
			name: "a token whose iss is not a string is rejected",
			token: func(t *testing.T) string {
				return signToken(t, k, claims(map[string]any{"iss": 42}), nil)
			},
			wantDesc: DescMalformed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			v := newTestVerifier(t, clk, ti.config(), other.config())
			v.Start(context.Background())
			e := verifyErr(t, v, tc.token(t))
			if e.Description != tc.wantDesc {
				t.Errorf("Description = %q; want %q (reason: %s)", e.Description, tc.wantDesc, e.Error())
			}
			if !strings.Contains(e.Error(), tc.reason) {
				t.Errorf("error %q does not mention %q", e.Error(), tc.reason)
			}
		})
	}
}

// The header's alg never decides how a key is used: an ES256 token is only
// checked against EC P-256 keys, whatever its kid names.
func TestVerifyNeverUsesAKeyWithTheWrongAlgorithm(t *testing.T) {
	rsaKey := newTestKey(t, "RS256", "RS256", "k1")
	ecKey := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, rsaKey)
	clk := newClock()
	ic := ti.config()
	ic.Algorithms = []string{"RS256", "ES256"}
	v := newTestVerifier(t, clk, ic)
	v.Start(context.Background())

	// Signed by an EC key under the RSA key's kid: no ES256 key has that kid.
	e := verifyErr(t, v, signToken(t, ecKey, ti.claimsAt(t0, nil), nil))
	if e.Description != DescKeyNotFound {
		t.Errorf("Description = %q; want %q", e.Description, DescKeyNotFound)
	}
}

func TestVerifyRejectsKeyConfusion(t *testing.T) {
	k := newTestKey(t, "RS256", "RS256", "k1")
	ti := newTestIssuer(t, k)
	confused := hmacKeyFromRSA(t, k)

	t.Run("HS256 is rejected when the issuer does not allow it", func(t *testing.T) {
		v := newTestVerifier(t, newClock(), ti.config())
		v.Start(context.Background())
		e := verifyErr(t, v, signToken(t, confused, ti.claimsAt(t0, nil), nil))
		if e.Description != DescAlgorithm {
			t.Errorf("Description = %q; want %q", e.Description, DescAlgorithm)
		}
	})
	t.Run("HS256 is verified only with the configured secret, never with a JWKS key", func(t *testing.T) {
		ic := ti.config()
		ic.Algorithms = []string{"RS256", "HS256"}
		ic.HMACSecret = strings.Repeat("s", 32)
		v := newTestVerifier(t, newClock(), ic)
		v.Start(context.Background())
		e := verifyErr(t, v, signToken(t, confused, ti.claimsAt(t0, nil), nil))
		if e.Description != DescSignature {
			t.Errorf("Description = %q; want %q", e.Description, DescSignature)
		}
		// The genuine secret works.
		good := testKey{kid: "k1", alg: jwa.HS256(), priv: []byte(ic.HMACSecret)}
		tok := mustVerify(t, v, signToken(t, good, ti.claimsAt(t0, nil), nil))
		if tok.Subject != "alice" {
			t.Errorf("Subject = %q", tok.Subject)
		}
	})
}

// hmacKeyFromRSA returns an HS256 "key" made of the PEM and DER encodings
// of k's public key, as used in algorithm-confusion attacks.
func hmacKeyFromRSA(t *testing.T, k testKey) testKey {
	t.Helper()
	pub := &k.priv.(*rsa.PrivateKey).PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return testKey{kid: k.kid, alg: jwa.HS256(), priv: pemBytes}
}

func b64json(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerifyRejectsMalformedTokens(t *testing.T) {
	k := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k)
	v := newTestVerifier(t, newClock(), ti.config())
	v.Start(context.Background())
	good := signToken(t, k, ti.claimsAt(t0, nil), nil)
	parts := strings.Split(good, ".")

	tests := []struct {
		name     string
		raw      string
		wantDesc string
	}{
		{"an empty token is malformed", "", DescMalformed},
		{"a random word is malformed", "hello", DescMalformed},
		{"a token with spaces is malformed", "Bearer " + good, DescMalformed},
		{"a token with a newline is malformed", good + "\n", DescMalformed},
		{"three empty segments are malformed", "..", DescMalformed},
		{"segments that are not base64 JSON are malformed", "a.b.c", DescMalformed},
		{"a header that is not JSON is malformed", base64.RawURLEncoding.EncodeToString([]byte("{nope")) + "." + parts[1] + "." + parts[2], DescMalformed},
		{"a token truncated inside the signature is rejected", good[:len(good)-10], DescSignature},
		{"a token without its signature is malformed", parts[0] + "." + parts[1] + ".", DescMalformed},
		{"a token truncated inside the payload is malformed", parts[0] + "." + parts[1][:len(parts[1])/2] + "." + parts[2], DescMalformed},
		{"a JWE is not accepted", "a.b.c.d.e", DescUnsupported},
		{"a payload that is a JSON array is malformed", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("[1,2]")) + "." + parts[2], DescMalformed},
		{"an oversized token is rejected before parsing", parts[0] + "." + strings.Repeat("A", DefaultMaxTokenBytes) + "." + parts[2], DescTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := verifyErr(t, v, tc.raw)
			if e.Description != tc.wantDesc {
				t.Errorf("Description = %q; want %q (%v)", e.Description, tc.wantDesc, e)
			}
		})
	}
}

func TestVerifyEnforcesEachIssuersTokenSizeLimit(t *testing.T) {
	k := newTestKey(t, "ES256", "ES256", "k1")
	small, large := newTestIssuer(t, k), newTestIssuer(t, k)
	icSmall, icLarge := small.config(), large.config()
	icSmall.MaxTokenBytes = 512
	icLarge.MaxTokenBytes = 16384
	v := newTestVerifier(t, newClock(), icSmall, icLarge)
	v.Start(context.Background())
	pad := map[string]any{"pad": strings.Repeat("x", 1000)}

	mustVerify(t, v, signToken(t, k, large.claimsAt(t0, pad), nil))
	e := verifyErr(t, v, signToken(t, k, small.claimsAt(t0, pad), nil))
	if e.Description != DescTooLarge {
		t.Errorf("Description = %q; want %q", e.Description, DescTooLarge)
	}
}

func TestVerifyExtractsRolesAndScopes(t *testing.T) {
	k := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k)
	tests := []struct {
		name       string
		rolesClaim string
		overrides  map[string]any
		wantRoles  []string
		wantScopes []string
	}{
		{name: "roles come from a nested claim", rolesClaim: "realm_access.roles",
			wantRoles: []string{"admin", "viewer"}, wantScopes: []string{"todos:read", "todos:write"}},
		{name: "roles come from a top-level groups claim", rolesClaim: "groups",
			overrides: map[string]any{"groups": []any{"eng", "ops", "eng", 7, ""}},
			wantRoles: []string{"eng", "ops"}, wantScopes: []string{"todos:read", "todos:write"}},
		{name: "a namespaced claim containing dots is found by its full name", rolesClaim: "https://example.com/roles",
			overrides: map[string]any{"https://example.com/roles": "editor"},
			wantRoles: []string{"editor"}, wantScopes: []string{"todos:read", "todos:write"}},
		{name: "a missing roles claim gives no roles", rolesClaim: "resource_access.todo.roles",
			wantRoles: nil, wantScopes: []string{"todos:read", "todos:write"}},
		{name: "scopes come from an scp array when scope is absent", rolesClaim: "",
			overrides:  map[string]any{"scope": absent, "scp": []string{"a", "b"}},
			wantScopes: []string{"a", "b"}},
		{name: "client_id falls back to azp", rolesClaim: "",
			overrides:  map[string]any{"client_id": absent, "azp": "spa"},
			wantScopes: []string{"todos:read", "todos:write"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ic := ti.config()
			ic.RolesClaim = tc.rolesClaim
			ic.TokenType = "" // allow tokens without client_id
			v := newTestVerifier(t, newClock(), ic)
			tok := mustVerify(t, v, signToken(t, k, ti.claimsAt(t0, tc.overrides), nil))
			if !slices.Equal(tok.Roles, tc.wantRoles) {
				t.Errorf("Roles = %q; want %q", tok.Roles, tc.wantRoles)
			}
			if !slices.Equal(tok.Scopes, tc.wantScopes) {
				t.Errorf("Scopes = %q; want %q", tok.Scopes, tc.wantScopes)
			}
			if _, ok := tc.overrides["azp"]; ok && tok.ClientID != "spa" {
				t.Errorf("ClientID = %q; want spa", tok.ClientID)
			}
		})
	}
}

func TestTokenClaimLooksUpPaths(t *testing.T) {
	tok := &Token{Claims: map[string]any{
		"a":     map[string]any{"b": map[string]any{"c": "deep"}},
		"a.b":   "literal",
		"plain": "p",
	}}
	tests := []struct {
		path string
		want any
		ok   bool
	}{
		{"plain", "p", true},
		{"a.b", "literal", true},
		{"a.b.c", "deep", true},
		{"a.x", nil, false},
		{"plain.x", nil, false},
		{"", nil, false},
	}
	for _, tc := range tests {
		t.Run("path "+tc.path, func(t *testing.T) {
			got, ok := tok.Claim(tc.path)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("Claim(%q) = %v, %v; want %v, %v", tc.path, got, ok, tc.want, tc.ok)
			}
		})
	}
	if !(&Token{Scopes: []string{"x"}}).HasScope("x") {
		t.Error("HasScope(x) = false")
	}
}

func TestVerifyCachesVerifiedTokensUntilExpiry(t *testing.T) {
	k := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k)
	clk := newClock()
	v := newTestVerifier(t, clk, ti.config())
	v.Start(context.Background())
	raw := signToken(t, k, ti.claimsAt(t0, map[string]any{"exp": t0.Add(time.Minute).Unix()}), nil)

	t.Run("a second verification returns the cached token", func(t *testing.T) {
		first := mustVerify(t, v, raw)
		second := mustVerify(t, v, raw)
		if first != second {
			t.Error("second Verify returned a different *Token; want the cached one")
		}
	})
	t.Run("the cache entry does not outlive exp", func(t *testing.T) {
		clk.Advance(time.Minute)
		if _, ok := v.cache.get(raw, clk.Now()); ok {
			t.Fatal("cache entry still present at exp")
		}
		// Within the leeway the token still verifies, but is not cached.
		mustVerify(t, v, raw)
		if v.cache.len() != 0 {
			t.Errorf("cache has %d entries; want 0 for an expired token", v.cache.len())
		}
		clk.Advance(31 * time.Second)
		if e := verifyErr(t, v, raw); e.Description != DescExpired {
			t.Errorf("Description = %q; want %q", e.Description, DescExpired)
		}
	})
	t.Run("Forget drops a cached token", func(t *testing.T) {
		raw := signToken(t, k, ti.claimsAt(clk.Now(), nil), nil)
		tok := mustVerify(t, v, raw)
		if tok.RawHash != sha256.Sum256([]byte(raw)) {
			t.Fatal("RawHash is not the SHA-256 of the token")
		}
		v.Forget(tok.RawHash)
		if _, ok := v.cache.get(raw, clk.Now()); ok {
			t.Error("token still cached after Forget")
		}
		if again := mustVerify(t, v, raw); again == tok {
			t.Error("Verify after Forget returned the forgotten *Token; want a fresh verification")
		}
	})
}

func TestVerifyDropsCachedTokensWhenTheirKeyIsWithdrawn(t *testing.T) {
	k1 := newTestKey(t, "ES256", "ES256", "k1")
	k2 := newTestKey(t, "ES256b", "ES256", "k2")
	ti := newTestIssuer(t, k1, k2)
	clk := newClock()
	v := newTestVerifier(t, clk, ti.config())
	v.Start(context.Background())
	raw := signToken(t, k1, ti.claimsAt(t0, nil), nil)
	mustVerify(t, v, raw)

	ti.publish(k2) // k1 withdrawn, e.g. after a compromise
	if err := v.issuers[ti.url].keys.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}

	e := verifyErr(t, v, raw)
	if e.Description != DescKeyNotFound {
		t.Errorf("Description = %q; want %q", e.Description, DescKeyNotFound)
	}
	mustVerify(t, v, signToken(t, k2, ti.claimsAt(t0, nil), nil))
}

func TestVerifyErrorIsTyped(t *testing.T) {
	v := newTestVerifier(t, newClock())
	_, err := v.Verify(context.Background(), "x.y.z")
	e, ok := err.(*Error)
	if !ok || e == nil {
		t.Fatalf("error %T; want *Error", err)
	}
	if !strings.HasPrefix(e.Error(), "invalid_token: ") {
		t.Errorf("Error() = %q", e.Error())
	}
}

// TestHelpersProduceStandardTokens is a sanity check that the helpers produce tokens other JOSE
// code accepts, so the rejection tests reject for the stated reason.
func TestHelpersProduceStandardTokens(t *testing.T) {
	k := newTestKey(t, "ES256", "ES256", "k1")
	raw := signToken(t, k, map[string]any{"sub": "x"}, nil)
	if _, err := jws.Verify([]byte(raw), jws.WithKey(k.alg, k.pub)); err != nil {
		t.Fatalf("jws.Verify: %v", err)
	}
}

func TestVerifyIsSafeForConcurrentUse(t *testing.T) {
	k1 := newTestKey(t, "ES256", "ES256", "k1")
	k2 := newTestKey(t, "ES256b", "ES256", "k2")
	ti := newTestIssuer(t, k1)
	clk := newClock()
	v := newTestVerifier(t, clk, ti.config())
	good := signToken(t, k1, ti.claimsAt(t0, nil), nil)
	rotated := signToken(t, k2, ti.claimsAt(t0, nil), nil)
	bad := signToken(t, k1, ti.claimsAt(t0, map[string]any{"aud": "x"}), nil)

	var wg sync.WaitGroup
	wg.Go(func() { v.Start(context.Background()) })
	wg.Go(func() {
		ti.publish(k1, k2)
		for range 5 {
			clk.Advance(jwksRefetchInterval)
			_ = v.issuers[ti.url].keys.refresh(context.Background())
		}
	})
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := v.Verify(context.Background(), good); err != nil {
					t.Errorf("good token: %v", err)
					return
				}
				_, _ = v.Verify(context.Background(), rotated) // depends on timing
				if _, err := v.Verify(context.Background(), bad); err == nil {
					t.Error("bad token accepted")
					return
				}
			}
		})
	}
	wg.Wait()
	mustVerify(t, v, rotated)
}

func TestVerifyStopsWaitingWhenTheRequestIsCancelled(t *testing.T) {
	k := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	}))
	t.Cleanup(hang.Close)
	ic := ti.config()
	ic.Discovery = Discovery{}
	ic.JWKSURI = hang.URL + "/jwks"
	v := newTestVerifier(t, newClock(), ic)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := v.Verify(ctx, signToken(t, k, ti.claimsAt(t0, nil), nil))
	e, ok := err.(*Error)
	if !ok || !e.Temporary || !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v; want a temporary error caused by the cancellation", err)
	}
}

func TestVerifyOpaqueTokensHonourTheIntrospectingIssuersSizeLimit(t *testing.T) {
	k := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k)
	big := ti.config()
	big.MaxTokenBytes = 16384
	ts := newTestIntrospection(t)
	small := ts.config(opaqueIssuer)
	small.MaxTokenBytes = 1024
	v := newTestVerifier(t, newClock(), big, small)
	e := verifyErr(t, v, strings.Repeat("a", 2000))
	if e.Description != DescTooLarge || ts.hits.Load() != 0 {
		t.Errorf("error = %v, endpoint hits %d; want too large without introspection", e, ts.hits.Load())
	}
}
