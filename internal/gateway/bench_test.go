package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/identity"
)

// The proxy benchmarks compare the gateway with a bare
// httputil.ReverseProxy in front of the same upstream, in process: the
// difference is the cost of routing, token verification (cached), request
// building, the decision and header hygiene.

func benchUpstream(b *testing.B) *httptest.Server {
	b.Helper()
	body := []byte(`{"id":"1","title":"write benchmarks","done":false}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// benchVerifier returns a real JWKS verifier and a token it has already
// verified once (so that later verifications hit its cache).
func benchVerifier(b *testing.B) (*identity.Verifier, string) {
	b.Helper()
	var handler http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	b.Cleanup(srv.Close)
	li, err := identity.NewLocalIssuer(srv.URL, "ES256")
	if err != nil {
		b.Fatal(err)
	}
	handler = li
	v, err := identity.NewVerifier(identity.Config{Issuers: []identity.IssuerConfig{li.IssuerConfig("todo-api")}}, srv.Client(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v.Start(ctx)
	b.Cleanup(v.Close)
	tok, err := li.Mint(map[string]any{"sub": "alice", "aud": "todo-api", "client_id": "bench", "roles": []string{"member"}, "scope": "todos:read"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	return v, tok
}

func runProxyBench(b *testing.B, h http.Handler, tok string) {
	b.Helper()
	req := httptest.NewRequest("GET", "/todos/1", nil)
	req.RemoteAddr = "198.51.100.7:40000"
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		_, _ = io.Copy(io.Discard, w.Body)
	}
}

func BenchmarkGatewayCachedJWT(b *testing.B) {
	up := benchUpstream(b)
	v, tok := benchVerifier(b)
	g := newOfflineGateway(b, v, up.URL)
	runProxyBench(b, g, tok)
}

func BenchmarkBareReverseProxy(b *testing.B) {
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport:  t,
		BufferPool: newBufferPool(), // as the gateway, so that only authorization differs
	}
	runProxyBench(b, rp, "unused")
}

// BenchmarkForwardAuthCachedJWT is the decision path alone: forward-auth
// with a cached JWT, no upstream.
func BenchmarkForwardAuthCachedJWT(b *testing.B) {
	v, tok := benchVerifier(b)
	g := newOfflineGateway(b, v, "")
	req := httptest.NewRequest("GET", "/.vigil/auth", nil)
	req.RemoteAddr = "10.0.0.1:40000"
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-Uri", "/todos/1")
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
