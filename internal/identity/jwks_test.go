package identity

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestJWKSUnknownKidRefetchesOnceThenRejects(t *testing.T) {
	k1 := newTestKey(t, "ES256", "ES256", "k1")
	k2 := newTestKey(t, "ES256b", "ES256", "k2")
	k3 := newTestKey(t, "RS256", "RS256", "k3")
	ti := newTestIssuer(t, k1)
	clk := newClock()
	v := newTestVerifier(t, clk, ti.config())
	v.Start(context.Background())
	if got := ti.jwksHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times at start; want 1", got)
	}

	// Rotation is only visible after the refetch interval since the last
	// fetch (the initial one).
	clk.Advance(jwksRefetchInterval)
	ti.publish(k1, k2)

	t.Run("an unknown kid triggers a refetch that finds the rotated key", func(t *testing.T) {
		tok := mustVerify(t, v, signToken(t, k2, ti.claimsAt(clk.Now(), nil), nil))
		if tok.Subject != "alice" {
			t.Errorf("Subject = %q", tok.Subject)
		}
		if got := ti.jwksHits.Load(); got != 2 {
			t.Errorf("JWKS fetched %d times; want 2", got)
		}
	})

	ti.publish(k1, k2, k3)
	raw3 := signToken(t, k3, ti.claimsAt(clk.Now(), nil), nil)

	t.Run("another unknown kid within the rate limit is rejected without fetching", func(t *testing.T) {
		e := verifyErr(t, v, raw3)
		if e.Description != DescKeyNotFound {
			t.Errorf("Description = %q; want %q", e.Description, DescKeyNotFound)
		}
		if e.Temporary {
			t.Error("Temporary = true; want false: a key set is loaded")
		}
		if got := ti.jwksHits.Load(); got != 2 {
			t.Errorf("JWKS fetched %d times; want still 2", got)
		}
	})

	t.Run("a kid that is still unknown after a refetch is rejected", func(t *testing.T) {
		clk.Advance(jwksRefetchInterval)
		k4 := newTestKey(t, "PS256", "PS256", "k4-never-published")
		e := verifyErr(t, v, signToken(t, k4, ti.claimsAt(clk.Now(), nil), nil))
		if e.Description != DescKeyNotFound || !strings.Contains(e.Reason, "even after refetching") {
			t.Errorf("error = %v; want key not found after refetch", e)
		}
		if got := ti.jwksHits.Load(); got != 3 {
			t.Errorf("JWKS fetched %d times; want 3", got)
		}
	})

	t.Run("the key refused under the rate limit verifies once a later refetch loaded it", func(t *testing.T) {
		mustVerify(t, v, raw3)
		if got := ti.jwksHits.Load(); got != 3 {
			t.Errorf("JWKS fetched %d times; want still 3", got)
		}
	})
}

func TestJWKSDownKeepsTheLastGoodKeys(t *testing.T) {
	k1 := newTestKey(t, "ES256", "ES256", "k1")
	k2 := newTestKey(t, "ES256b", "ES256", "k2")
	ti := newTestIssuer(t, k1)
	clk := newClock()
	v := newTestVerifier(t, clk, ti.config())
	v.Start(context.Background())

	ti.setDown(true)
	ti.publish(k1, k2)
	clk.Advance(time.Hour) // the key set is stale, and refetching is allowed
	if err := v.issuers[ti.url].keys.refresh(context.Background()); err == nil {
		t.Fatal("refresh succeeded while the issuer is down")
	}

	t.Run("tokens signed by a known key still verify", func(t *testing.T) {
		mustVerify(t, v, signToken(t, k1, ti.claimsAt(clk.Now(), nil), nil))
	})
	t.Run("tokens signed by an unknown key are denied", func(t *testing.T) {
		clk.Advance(jwksRefetchInterval)
		e := verifyErr(t, v, signToken(t, k2, ti.claimsAt(clk.Now(), nil), nil))
		if e.Description != DescKeyNotFound {
			t.Errorf("Description = %q; want %q", e.Description, DescKeyNotFound)
		}
	})
	t.Run("the status reports the failure and the keys in use", func(t *testing.T) {
		st := v.Status()
		if len(st) != 1 || !st[0].Loaded || st[0].Keys != 1 || st[0].LastError == "" {
			t.Errorf("Status = %+v; want loaded with 1 key and a last error", st)
		}
		if err := v.Ready(); err != nil {
			t.Errorf("Ready = %v; want nil with the last good keys", err)
		}
	})
}

func TestJWKSDownFromTheStartDeniesEveryToken(t *testing.T) {
	k1 := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k1)
	ti.setDown(true)
	clk := newClock()
	v := newTestVerifier(t, clk, ti.config())
	v.Start(context.Background())

	e := verifyErr(t, v, signToken(t, k1, ti.claimsAt(clk.Now(), nil), nil))
	if e.Description != DescUnavailable || !e.Temporary {
		t.Errorf("error = %v (temporary %v); want unavailable and temporary", e, e.Temporary)
	}
	if err := v.Ready(); err == nil || !strings.Contains(err.Error(), ti.url) {
		t.Errorf("Ready = %v; want an error naming the issuer", err)
	}

	t.Run("once the issuer is back, the next allowed refetch loads the keys", func(t *testing.T) {
		ti.setDown(false)
		clk.Advance(jwksRefetchInterval)
		mustVerify(t, v, signToken(t, k1, ti.claimsAt(clk.Now(), nil), nil))
		if err := v.Ready(); err != nil {
			t.Errorf("Ready = %v", err)
		}
	})
}

func TestVerifyWithoutStartFetchesKeysOnDemand(t *testing.T) {
	k1 := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k1)
	clk := newClock()
	v := newTestVerifier(t, clk, ti.config())
	mustVerify(t, v, signToken(t, k1, ti.claimsAt(clk.Now(), nil), nil))
}

func TestJWKSHonoursCacheControl(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   time.Duration
	}{
		{"max-age sets the refresh time", "public, max-age=120", 2 * time.Minute},
		{"no max-age means the default", "", 10 * time.Minute},
		{"a tiny max-age is raised to one minute", "max-age=5", time.Minute},
		{"no-cache means the minimum", "no-cache", time.Minute},
		{"a huge max-age is capped at 24 hours", "max-age=99999999999999999999999", 24 * time.Hour},
		{"a max-age of several days is capped at 24 hours", "max-age=604800", 24 * time.Hour},
		{"an unparsable max-age means the default", "max-age=soon", 10 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ti := newTestIssuer(t, newTestKey(t, "ES256", "ES256", "k1"))
			ti.cacheControl = tc.header
			v := newTestVerifier(t, newClock(), ti.config())
			v.Start(context.Background())
			st := v.Status()
			if len(st) != 1 || !st[0].Loaded {
				t.Fatalf("Status = %+v; want loaded", st)
			}
			if got := st[0].RefreshAt.Sub(st[0].FetchedAt); got != tc.want {
				t.Errorf("refresh after %s; want %s", got, tc.want)
			}
			if got := v.issuers[ti.url].keys.nextRefresh(); got != tc.want {
				t.Errorf("nextRefresh = %s; want %s", got, tc.want)
			}
		})
	}
}

func TestParseMaxAge(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"max-age=60", time.Minute, true},
		{`max-age="60"`, time.Minute, true},
		{"MAX-AGE=60", time.Minute, true},
		{"no-store, max-age=60", 0, true},
		{"max-age=-1", 0, false},
		{"s-maxage=60", 0, false},
		{"", 0, false},
		{"max-age=", 0, false},
	}
	for _, tc := range tests {
		t.Run("header "+tc.header, func(t *testing.T) {
			got, ok := parseMaxAge(tc.header)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseMaxAge(%q) = %s, %v; want %s, %v", tc.header, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestJWKSBackgroundRefreshBacksOffAfterFailures(t *testing.T) {
	ks := &keySource{now: newClock().Now}
	want := []time.Duration{jwksRetryMin, jwksRetryMin, 2 * jwksRetryMin, 4 * jwksRetryMin, 8 * jwksRetryMin, 16 * jwksRetryMin, jwksRetryMax, jwksRetryMax}
	for i, w := range want {
		ks.failures = i
		if i == 0 {
			// No key set yet and no failure: retry soon.
			if got := ks.nextRefresh(); got != w {
				t.Errorf("nextRefresh with no key set = %s; want %s", got, w)
			}
			continue
		}
		if got := ks.nextRefresh(); got != w {
			t.Errorf("nextRefresh after %d failures = %s; want %s", i, got, w)
		}
	}
}

func TestJWKSDiscovery(t *testing.T) {
	k1 := newTestKey(t, "ES256", "ES256", "k1")

	t.Run("a discovery document naming another issuer is refused", func(t *testing.T) {
		ti := newTestIssuer(t, k1)
		ti.discoveryIssuer = "https://impostor.example"
		v := newTestVerifier(t, newClock(), ti.config())
		v.Start(context.Background())
		st := v.Status()
		if st[0].Loaded || !strings.Contains(st[0].LastError, "impostor") {
			t.Errorf("Status = %+v; want not loaded, error naming the impostor", st[0])
		}
		if ti.jwksHits.Load() != 0 {
			t.Error("JWKS fetched despite the issuer mismatch")
		}
	})
	t.Run("an explicit jwks_uri is used without discovery", func(t *testing.T) {
		ti := newTestIssuer(t, k1)
		ic := ti.config()
		ic.Discovery = Discovery{}
		ic.JWKSURI = ti.url + "/jwks"
		v := newTestVerifier(t, newClock(), ic)
		v.Start(context.Background())
		mustVerify(t, v, signToken(t, k1, ti.claimsAt(t0, nil), nil))
		if ti.discoveryHits.Load() != 0 {
			t.Error("discovery fetched although jwks_uri is configured")
		}
	})
	t.Run("an explicit discovery URL is used", func(t *testing.T) {
		ti := newTestIssuer(t, k1)
		ic := ti.config()
		ic.Discovery = Discovery{Enabled: true, URL: ti.url + "/.well-known/openid-configuration"}
		v := newTestVerifier(t, newClock(), ic)
		v.Start(context.Background())
		mustVerify(t, v, signToken(t, k1, ti.claimsAt(t0, nil), nil))
	})
	t.Run("when discovery fails the last known jwks_uri is used", func(t *testing.T) {
		ti := newTestIssuer(t, k1)
		v := newTestVerifier(t, newClock(), ti.config())
		v.Start(context.Background())
		ks := v.issuers[ti.url].keys
		ti.mu.Lock()
		ti.discoveryIssuer = "https://broken.example"
		ti.mu.Unlock()
		if err := ks.refresh(context.Background()); err != nil {
			t.Errorf("refresh = %v; want success through the last known jwks_uri", err)
		}
		if ti.jwksHits.Load() != 2 {
			t.Errorf("JWKS fetched %d times; want 2", ti.jwksHits.Load())
		}
	})
}

func TestParseJWKSSkipsKeysThatCannotVerify(t *testing.T) {
	body, err := os.ReadFile("testdata/jwks_mixed.json")
	if err != nil {
		t.Fatal(err)
	}
	set, skipped, err := parseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.keys {
		kids = append(kids, k.kid)
	}
	if strings.Join(kids, ",") != "good-ec,good-rsa" {
		t.Errorf("usable keys = %q; want good-ec, good-rsa", kids)
	}
	wantSkipped := []string{"oct", "2048", `use is "enc"`, "key_ops", "ecdh", "unknown-kty"}
	if len(skipped) != len(wantSkipped) {
		t.Fatalf("skipped = %q; want %d entries", skipped, len(wantSkipped))
	}
	for i, w := range wantSkipped {
		if !strings.Contains(skipped[i], w) {
			t.Errorf("skipped[%d] = %q; want it to mention %q", i, skipped[i], w)
		}
	}
}

func TestParseJWKSRejectsBadDocuments(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"a document that is not JSON is rejected", "<html>"},
		{"a single JWK without a keys array is rejected", `{"kty":"EC","crv":"P-256","x":"a","y":"b"}`},
		{"keys that is not an array is rejected", `{"keys":{}}`},
		{"too many keys are rejected", `{"keys":[` + strings.TrimSuffix(strings.Repeat(`{},`, maxJWKSKeys+1), ",") + `]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := parseJWKS([]byte(tc.body)); err == nil {
				t.Error("parseJWKS succeeded; want an error")
			}
		})
	}
}

func TestJWKSRejectsOversizedResponses(t *testing.T) {
	ti := newTestIssuer(t)
	ti.jwksBody = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSBytes) + `"}`)
	v := newTestVerifier(t, newClock(), ti.config())
	v.Start(context.Background())
	st := v.Status()
	if st[0].Loaded || !strings.Contains(st[0].LastError, "exceeds") {
		t.Errorf("Status = %+v; want a size error", st[0])
	}
}

func TestVerifierCloseStopsFetching(t *testing.T) {
	k1 := newTestKey(t, "ES256", "ES256", "k1")
	ti := newTestIssuer(t, k1)
	clk := newClock()
	v := newTestVerifier(t, clk, ti.config())
	v.Start(context.Background())
	v.Close()
	v.Close() // idempotent

	k2 := newTestKey(t, "ES256b", "ES256", "k2")
	ti.publish(k1, k2)
	clk.Advance(time.Hour)
	mustVerify(t, v, signToken(t, k1, ti.claimsAt(clk.Now(), nil), nil))
	e := verifyErr(t, v, signToken(t, k2, ti.claimsAt(clk.Now(), nil), nil))
	if e.Description != DescKeyNotFound {
		t.Errorf("Description = %q; want %q", e.Description, DescKeyNotFound)
	}
	if got := ti.jwksHits.Load(); got != 1 {
		t.Errorf("JWKS fetched %d times; want 1 (no fetch after Close)", got)
	}
}
