package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/risk"
	"github.com/vigil-authz/vigil/internal/state"
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
	req.Header.Set("User-Agent", "bench/1.0")
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		_, _ = io.Copy(io.Discard, w.Body)
	}
	reportCPU(b, cpu)
}

// cpuTime is the process's user+system CPU time so far. The benchmarks
// report it per operation (cpu-ns/op): unlike ns/op it includes work done
// on other goroutines, such as the risk engine's.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	if used := cpuTime() - start; used > 0 && b.N > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// discardPublisher accepts every risk change.
type discardPublisher struct{}

func (discardPublisher) Publish(context.Context, state.Signal) (uint64, error) { return 1, nil }

// withRiskEngine returns an Observe hook feeding a running risk engine,
// as the server wires it, and the engine.
func withRiskEngine(b *testing.B) (ObserveFunc, *risk.Engine) {
	b.Helper()
	reg := prometheus.NewRegistry()
	eng, err := risk.New(risk.Options{Config: risk.Config{QueueSize: benchQueue}, Publisher: discardPublisher{}, Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
		// Dropped events would understate the engine's cost: report them.
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "vigil_risk_events_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "dropped" && m.GetCounter().GetValue() > 0 {
					b.Logf("risk engine dropped %.0f events", m.GetCounter().GetValue())
				}
			}
		}
	})
	return func(e Event) {
		eng.Observe(risk.Event{
			Time: e.Time, Outcome: riskOutcome(e.Outcome), Issuer: e.Issuer, Subject: e.Subject,
			SessionID: e.SessionID, TokenID: e.TokenID, IP: e.IP, Country: e.Geo.Country,
			Latitude: e.Geo.Latitude, Longitude: e.Geo.Longitude, AccuracyKM: float64(e.Geo.AccuracyRadius),
			Located: e.Geo.Located(), DeviceID: e.DeviceID, UserAgent: e.UserAgent,
			Action: e.Action, ResourceType: e.ResourceType, ResourceID: e.ResourceID,
		})
	}, eng
}

func riskOutcome(o Outcome) risk.Outcome {
	switch o {
	case OutcomeAllow:
		return risk.Allowed
	case OutcomeStepUp:
		return risk.SteppedUp
	case OutcomeRevoked:
		return risk.Revoked
	case OutcomeUnauthenticated:
		return risk.Unauthenticated
	}
	return risk.Denied
}

func BenchmarkGatewayCachedJWT(b *testing.B) {
	up := benchUpstream(b)
	v, tok := benchVerifier(b)
	g := newOfflineGateway(b, v, up.URL)
	runProxyBench(b, g, tok)
}

// BenchmarkGatewayCachedJWTObserved is BenchmarkGatewayCachedJWT with the
// risk engine fed from Options.Observe; compare cpu-ns/op.
func BenchmarkGatewayCachedJWTObserved(b *testing.B) {
	up := benchUpstream(b)
	v, tok := benchVerifier(b)
	g := newOfflineGateway(b, v, up.URL)
	g.obs, _ = withRiskEngine(b)
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
	runForwardAuthBench(b, g, tok)
}

// BenchmarkForwardAuthCachedJWTObserved is BenchmarkForwardAuthCachedJWT
// with the risk engine fed from Options.Observe; compare cpu-ns/op.
func BenchmarkForwardAuthCachedJWTObserved(b *testing.B) {
	v, tok := benchVerifier(b)
	g := newOfflineGateway(b, v, "")
	g.obs, _ = withRiskEngine(b)
	runForwardAuthBench(b, g, tok)
}

func runForwardAuthBench(b *testing.B, g *Gateway, tok string) {
	req := httptest.NewRequest("GET", "/.vigil/auth", nil)
	req.RemoteAddr = "10.0.0.1:40000"
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-Uri", "/todos/1")
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	req.Header.Set("User-Agent", "bench/1.0")
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	reportCPU(b, cpu)
}

// The *ObserveOverhead benchmarks run two gateways, one without and one
// with the risk engine, in alternating slices of requests so that both see
// the same background load (the benchmark machine is shared), and report
// the CPU time per request of each (process-wide, so the engine's own
// goroutine is included: each observed slice ends with Flush) and the
// overhead in per cent.

func BenchmarkGatewayObserveOverhead(b *testing.B) {
	up := benchUpstream(b)
	v, tok := benchVerifier(b)
	plain := newOfflineGateway(b, v, up.URL)
	observed := newOfflineGateway(b, v, up.URL)
	var eng *risk.Engine
	observed.obs, eng = withRiskEngine(b)
	req := httptest.NewRequest("GET", "/todos/1", nil)
	req.RemoteAddr = "198.51.100.7:40000"
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", "bench/1.0")
	runOverhead(b, plain, observed, eng, req, 1000)
}

func BenchmarkForwardAuthObserveOverhead(b *testing.B) {
	v, tok := benchVerifier(b)
	plain := newOfflineGateway(b, v, "")
	observed := newOfflineGateway(b, v, "")
	var eng *risk.Engine
	observed.obs, eng = withRiskEngine(b)
	req := httptest.NewRequest("GET", "/.vigil/auth", nil)
	req.RemoteAddr = "10.0.0.1:40000"
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-Uri", "/todos/1")
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	req.Header.Set("User-Agent", "bench/1.0")
	runOverhead(b, plain, observed, eng, req, 5000)
}

func runOverhead(b *testing.B, plain, observed http.Handler, eng *risk.Engine, req *http.Request, slice int) {
	b.Helper()
	serve := func(h http.Handler, n int) {
		for range n {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	serve(plain, slice)
	serve(observed, slice) // warm both
	var cpuPlain, cpuObserved time.Duration
	var n int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c0 := cpuTime()
		serve(plain, slice)
		c1 := cpuTime()
		serve(observed, slice)
		if err := eng.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		c2 := cpuTime()
		cpuPlain += c1 - c0
		cpuObserved += c2 - c1
		n += slice
	}
	p := float64(cpuPlain.Nanoseconds()) / float64(n)
	o := float64(cpuObserved.Nanoseconds()) / float64(n)
	b.ReportMetric(p, "plain-cpu-ns/req")
	b.ReportMetric(o, "observed-cpu-ns/req")
	b.ReportMetric(100*(o-p)/p, "overhead-%")
}

var benchQueue = 0 // default
