package identity

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, and it
// must return exactly one of a token or an *Error.
func FuzzVerify(f *testing.F) {
	k := newTestKey(f, "ES256", "ES256", "k1")
	ti := newTestIssuer(f, k)
	clk := newClock()
	v := newTestVerifier(f, clk, ti.config())
	v.Start(context.Background())

	good := signToken(f, k, ti.claimsAt(t0, nil), nil)
	parts := strings.Split(good, ".")
	for _, seed := range []string{
		good,
		good[:len(good)/2],
		parts[0] + "." + parts[1] + ".",
		signToken(f, k, ti.claimsAt(t0, map[string]any{"exp": "x"}), nil),
		signToken(f, k, ti.claimsAt(t0, nil), map[string]any{"kid": "unknown"}),
		signToken(f, k, ti.claimsAt(t0, nil), map[string]any{"typ": "secevent+jwt"}),
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.",
		"a.b.c", "..", "a.b.c.d.e", "", "opaque-token",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(context.Background(), raw)
		if (tok == nil) == (err == nil) {
			t.Fatalf("Verify returned token %v and error %v", tok, err)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidToken || e.Description == "" {
				t.Fatalf("error %#v is not a complete *Error", err)
			}
			return
		}
		if tok.Issuer != ti.url || tok.Subject == "" || !clk.Now().Before(tok.Expiry.Add(DefaultLeeway)) {
			t.Fatalf("accepted an invalid token: %+v", tok)
		}
	})
}

// FuzzDecodeClaims checks that claim decoding and validation never panic on
// arbitrary (signed, hence attacker-chosen by a trusted issuer, or
// introspection-supplied) JSON.
func FuzzDecodeClaims(f *testing.F) {
	f.Add([]byte(`{"iss":"https://x","sub":"a","aud":["api"],"exp":1e10,"realm_access":{"roles":["r"]}}`))
	f.Add([]byte(`{"exp":"soon","aud":7,"scope":["a",1]}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte("\xff"))
	rules := &claimRules{issuer: "https://x", audiences: []string{"api"}, leeway: time.Second, rolesClaim: "realm_access.roles", requireRFC9068: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		claims, err := decodeClaims(b)
		if err != nil {
			return
		}
		for _, strict := range []bool{true, false} {
			tok, e := rules.tokenFromClaims(claims, [32]byte{}, t0, strict)
			if (tok == nil) == (e == nil) {
				t.Fatalf("tokenFromClaims returned %v and %v", tok, e)
			}
		}
	})
}

// FuzzParseJWKS checks that a hostile JWKS document never panics.
func FuzzParseJWKS(f *testing.F) {
	if b, err := os.ReadFile("testdata/jwks_mixed.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, _, err := parseJWKS(b)
		if err != nil {
			return
		}
		for _, k := range set.keys {
			for _, alg := range defaultAlgorithms {
				k.compatible(alg)
			}
		}
	})
}

// FuzzParseMaxAge checks Cache-Control parsing.
func FuzzParseMaxAge(f *testing.F) {
	for _, s := range []string{"max-age=60", "no-store", `max-age="1"`, "max-age=99999999999999999999", ",,="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		d := cacheMaxAge(h)
		if d < jwksMinMaxAge || d > jwksMaxMaxAge {
			t.Fatalf("cacheMaxAge(%q) = %s, out of bounds", h, d)
		}
	})
}
