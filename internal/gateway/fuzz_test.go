package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/route"
)

// fakeAuth accepts "alice" (a member), "admin" (an admin) and "mfa" (a
// member with MFA); anything else is an invalid token.
type fakeAuth struct{}

func (fakeAuth) Verify(_ context.Context, raw string) (*identity.Token, error) {
	switch raw {
	case "alice":
		return &identity.Token{Subject: "alice", Roles: []string{"member"}, PrincipalType: "User", RoleType: "Role"}, nil
	case "admin":
		return &identity.Token{Subject: "root", Roles: []string{"admin"}, PrincipalType: "User", RoleType: "Role"}, nil
	case "mfa":
		return &identity.Token{Subject: "alice", Roles: []string{"member"}, ACR: "urn:example:mfa", PrincipalType: "User", RoleType: "Role"}, nil
	}
	return nil, &identity.Error{Code: identity.CodeInvalidToken, Description: identity.DescMalformed}
}

// newOfflineGateway builds a gateway whose upstream is never contacted
// (for forward-auth and benchmarks of the decision path).
func newOfflineGateway(tb testing.TB, auth Authenticator, upstreamURL string) *Gateway {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "policies", "todo.cedar"))
	if err != nil {
		tb.Fatal(err)
	}
	store := policy.NewStore(policy.StoreOptions{})
	if _, _, err := store.Apply(policy.Bundle{Files: []policy.File{{Name: "todo.cedar", Data: data}}}, "test"); err != nil {
		tb.Fatal(err)
	}
	table, err := route.Compile(route.Config{Routes: testRoutes, ActionType: "Action"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if upstreamURL == "" {
		upstreamURL = "http://127.0.0.1:1"
	}
	g, err := New(Options{
		Config: Config{
			Upstreams:      []Upstream{{Name: "todo", URL: upstreamURL}, {Name: "down", URL: "http://127.0.0.1:1"}},
			TrustedProxies: []string{"10.0.0.0/8"},
		},
		Views:  engine.New(store, nil).View,
		Auth:   auth,
		Router: table,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

func FuzzParseOrigin(f *testing.F) {
	f.Add("GET", "/todos/1?x=1", "", "", "", "")
	f.Add("", "", "DELETE", "/todos/1", "api.example", "https")
	f.Add("GET", "/a", "POST", "/b", "evil/host", "gopher")
	f.Add("GET", "/todos/%2e%2e/admin#frag", "", "", "", "wss")
	f.Fuzz(func(t *testing.T, oMethod, oURI, fMethod, fURI, host, proto string) {
		h := http.Header{}
		for k, v := range map[string]string{
			"X-Original-Method": oMethod, "X-Original-Uri": oURI, "X-Forwarded-Method": fMethod,
			"X-Forwarded-Uri": fURI, "X-Forwarded-Host": host, "X-Forwarded-Proto": proto,
		} {
			if v != "" {
				h.Set(k, v)
			}
		}
		o, err := parseOrigin(h)
		if err != nil {
			return
		}
		if o.method == "" || !strings.HasPrefix(o.path, "/") || strings.ContainsAny(o.path, "?# \t\r\n") || len(o.path) > maxOriginalURI {
			t.Fatalf("parseOrigin accepted %+v", o)
		}
		if o.scheme != "" && o.scheme != "http" && o.scheme != "https" {
			t.Fatalf("scheme %q", o.scheme)
		}
		if o.host != "" && !validHost(o.host) {
			t.Fatalf("host %q", o.host)
		}
	})
}

// FuzzForwardAuth drives the whole forward-auth flow (header parsing,
// route matching, request building, decision, answer) with arbitrary
// headers from a trusted proxy. It must never panic, never answer
// anything but 200/400/401/403, and allow only what the policies allow.
func FuzzForwardAuth(f *testing.F) {
	g := newOfflineGateway(f, fakeAuth{}, "")
	f.Add("GET", "/todos/1", "Bearer alice", "198.51.100.1", "", "")
	f.Add("DELETE", "/todos/1", "Bearer alice", "", "203.0.113.1", "dev")
	f.Add("DELETE", "/todos/1", "Bearer mfa", "", "", "")
	f.Add("GET", "/healthz", "", "", "", "")
	f.Add("GET", "/admin", "Bearer admin", "6.6.6.6, 10.0.0.9", "", "")
	f.Add("GET", "//admin", "Bearer admin", "", "", "")
	f.Add("get", "/todos/%2e%2e/admin?x", "bearer   ", "garbage", "1.2.3.4", "\x00")
	f.Fuzz(func(t *testing.T, method, uri, auth, xff, realIP, device string) {
		r := httptest.NewRequest("GET", "/.vigil/auth", nil)
		r.RemoteAddr = "10.1.2.3:4000"
		set := func(k, v string) {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		set("X-Original-Method", method)
		set("X-Original-Uri", uri)
		set("Authorization", auth)
		set("X-Forwarded-For", xff)
		set("X-Real-Ip", realIP)
		set("X-Device-Id", device)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		switch w.Code {
		case 200:
			// Only three principals exist; every allowed request is theirs
			// or anonymous on the anonymous route.
			sub := w.Header().Get("X-Vigil-Subject")
			path, _, _ := strings.Cut(uri, "?")
			if sub == "" && !(method == "GET" || method == "HEAD") {
				t.Fatalf("anonymous %s %s allowed", method, uri)
			}
			if sub == "" && path != "/healthz" {
				t.Fatalf("anonymous %s %s allowed", method, uri)
			}
			if sub != "" && sub != "alice" && sub != "root" {
				t.Fatalf("allowed as %q", sub)
			}
		case 400, 401, 403:
		default:
			t.Fatalf("status %d for %q %q: %s", w.Code, method, uri, w.Body.String())
		}
		if w.Header().Get("X-Request-Id") == "" {
			t.Fatal("no request id")
		}
	})
}

func FuzzClientAddr(f *testing.F) {
	ps, err := newProxySet([]string{"10.0.0.0/8", "2001:db8::/32"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("198.51.100.1, 10.0.0.1")
	f.Add("[2001:db9::1]:80,2001:db8::2")
	f.Add(" , garbage,,1.2.3.4")
	f.Fuzz(func(t *testing.T, xff string) {
		peer := netip.MustParseAddr("10.9.9.9")
		got := ps.clientAddr(peer, []string{xff})
		if got == peer {
			return
		}
		// Anything else must be an address named in the header.
		found := false
		for item := range strings.SplitSeq(xff, ",") {
			if a, ok := parseForwardedAddr(strings.TrimSpace(item)); ok && a == got {
				found = true
			}
		}
		if !found {
			t.Fatalf("clientAddr(%q) = %s, which the header does not name", xff, got)
		}
	})
}
