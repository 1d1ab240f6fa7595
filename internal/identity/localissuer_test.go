package identity

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// startLocalIssuer serves a LocalIssuer on a loopback port whose URL is
// known before the issuer is created.
func startLocalIssuer(t testing.TB, alg string) *LocalIssuer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	li, err := NewLocalIssuer("http://"+ln.Addr().String(), alg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: li}}
	srv.Start()
	t.Cleanup(srv.Close)
	return li
}

func TestLocalIssuerTokensVerify(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256"} {
		t.Run(alg+" tokens verify through discovery", func(t *testing.T) {
			li := startLocalIssuer(t, alg)
			v, err := NewVerifier(Config{Issuers: []IssuerConfig{li.IssuerConfig("todo-api")}}, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			v.Start(context.Background())

			raw, err := li.Mint(map[string]any{"sub": "alice", "aud": "todo-api", "client_id": "cli", "roles": []string{"admin"}}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := v.Verify(context.Background(), raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tok.Subject != "alice" || tok.Issuer != li.Issuer() || len(tok.Roles) != 1 || tok.JTI == "" {
				t.Errorf("token = %+v", tok)
			}
			if li.Algorithm() != alg {
				t.Errorf("Algorithm = %q", li.Algorithm())
			}
		})
	}
}

func TestLocalIssuerRotation(t *testing.T) {
	li := startLocalIssuer(t, "ES256")
	clk := &fakeClock{t: time.Now()}
	v := newTestVerifier(t, clk, li.IssuerConfig("todo-api"))
	v.Start(context.Background())
	claims := map[string]any{"sub": "alice", "aud": "todo-api", "client_id": "cli"}
	before, _ := li.Mint(claims, time.Minute)
	oldKid := li.KeyID()
	if err := li.Rotate(); err != nil {
		t.Fatal(err)
	}
	if li.KeyID() == oldKid {
		t.Fatal("Rotate kept the key id")
	}
	after, _ := li.Mint(claims, time.Minute)
	clk.Advance(jwksRefetchInterval)
	for name, raw := range map[string]string{"old key": before, "new key": after} {
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Errorf("token signed with the %s: %v", name, err)
		}
	}
}

func TestLocalIssuerMint(t *testing.T) {
	li, err := NewLocalIssuer("http://127.0.0.1:9/", "")
	if err != nil {
		t.Fatal(err)
	}
	li.now = func() time.Time { return t0 }
	if li.Issuer() != "http://127.0.0.1:9" || li.JWKSURI() != "http://127.0.0.1:9/jwks.json" || li.Algorithm() != "ES256" {
		t.Errorf("issuer %q, jwks %q, alg %q", li.Issuer(), li.JWKSURI(), li.Algorithm())
	}
	t.Run("defaults and time values become claims", func(t *testing.T) {
		raw, err := li.Mint(map[string]any{"sub": "a", "nbf": t0.Add(time.Second)}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		claims := decodeSegment(t, raw, 1)
		for name, want := range map[string]string{"iss": "http://127.0.0.1:9", "iat": itoa(t0.Unix()), "exp": itoa(t0.Add(time.Minute).Unix()), "nbf": itoa(t0.Unix() + 1)} {
			if got := claims[name]; got != want {
				t.Errorf("%s = %v; want %v", name, got, want)
			}
		}
		hdr := decodeSegment(t, raw, 0)
		if hdr["typ"] != "at+jwt" || hdr["kid"] != li.KeyID() || hdr["alg"] != "ES256" {
			t.Errorf("header = %v", hdr)
		}
	})
	t.Run("a token without exp and ttl is refused", func(t *testing.T) {
		if _, err := li.Mint(map[string]any{"sub": "a"}, 0); err == nil {
			t.Error("Mint succeeded without exp")
		}
	})
	t.Run("bad arguments are refused", func(t *testing.T) {
		if _, err := NewLocalIssuer("", "ES256"); err == nil {
			t.Error("empty issuer accepted")
		}
		if _, err := NewLocalIssuer("http://x", "HS256"); err == nil {
			t.Error("HS256 accepted")
		}
	})
}

func TestLocalIssuerHandler(t *testing.T) {
	li, err := NewLocalIssuer("http://127.0.0.1:9/idp", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   string
	}{
		{"the discovery document names the issuer", "GET", "/idp/.well-known/openid-configuration", 200, `"jwks_uri":"http://127.0.0.1:9/idp/jwks.json"`},
		{"the JWKS lists the public key", "GET", "/jwks.json", 200, `"kid":"` + li.KeyID() + `"`},
		{"other paths are not found", "GET", "/token", 404, ""},
		{"other methods are refused", "POST", "/jwks.json", 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			li.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.wantStatus || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("%s %s = %d %s", tc.method, tc.path, rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), `"d":`) {
				t.Error("private key material served")
			}
		})
	}
}
