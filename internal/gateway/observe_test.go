package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
)

// eventLog collects observed events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) observe(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) take() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

func TestObserveReportsDecidedRequests(t *testing.T) {
	geo := writeTestGeoDB(t)
	var log eventLog
	h := newHarness(t, func(c *Config, o *Options) {
		c.GeoIP = geo
		o.Observe = log.observe
	})
	alice := h.token("alice", []string{"member"}, map[string]any{"sid": "s-1", "jti": "t-1"})
	outsider := h.token("mallory", nil, nil)

	t.Run("an allowed request carries identity, address, location, device and resource", func(t *testing.T) {
		hdr := bearerHeader(alice)
		hdr.Set("X-Forwarded-For", "2001:db8::7")
		hdr.Set("X-Device-ID", "laptop-7")
		hdr.Set("User-Agent", "probe/1.0")
		if resp, body := h.request(true, "GET", "/todos/42", hdr); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		evs := log.take()
		if len(evs) != 1 {
			t.Fatalf("got %d events, want 1", len(evs))
		}
		e := evs[0]
		want := Event{
			Time: e.Time, Surface: SurfaceGateway, Outcome: OutcomeAllow,
			Issuer: h.issuer.Issuer(), Subject: "alice", SessionID: "s-1", TokenID: "t-1", ClientID: "test-client",
			IP:       netip.MustParseAddr("2001:db8::7"),
			Geo:      Geo{Country: "DE", City: "Berlin", Latitude: 52.52, Longitude: 13.405, AccuracyRadius: 20},
			DeviceID: "laptop-7", UserAgent: "probe/1.0",
			Action: "GET /todos/{id}", ResourceType: "Todo", ResourceID: "42",
		}
		if e != want {
			t.Errorf("event = %+v\nwant    %+v", e, want)
		}
		if e.Time.IsZero() {
			t.Error("event has no time")
		}
	})
	t.Run("a denied request is reported as a denial", func(t *testing.T) {
		if resp, _ := h.request(false, "GET", "/todos/1", bearerHeader(outsider)); resp.StatusCode != 403 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		evs := log.take()
		if len(evs) != 1 || evs[0].Outcome != OutcomeDeny || evs[0].Subject != "mallory" {
			t.Fatalf("events = %+v", evs)
		}
	})
	t.Run("a step-up denial is reported as step-up", func(t *testing.T) {
		if resp, _ := h.request(false, "DELETE", "/todos/1", bearerHeader(alice)); resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if evs := log.take(); len(evs) != 1 || evs[0].Outcome != OutcomeStepUp {
			t.Fatalf("events = %+v", evs)
		}
	})
	t.Run("an invalid token is reported without identity", func(t *testing.T) {
		if resp, _ := h.request(false, "GET", "/todos/1", bearerHeader("not.a.token")); resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		evs := log.take()
		if len(evs) != 1 {
			t.Fatalf("got %d events, want 1", len(evs))
		}
		if e := evs[0]; e.Outcome != OutcomeUnauthenticated || e.Subject != "" || !e.IP.IsLoopback() || e.Action != "GET /todos/{id}" {
			t.Errorf("event = %+v", e)
		}
	})
	t.Run("requests refused before a decision are not reported", func(t *testing.T) {
		h.request(false, "GET", "/todos/1", nil)                      // no token
		h.request(false, "GET", "/nowhere", bearerHeader(alice))      // no route
		h.request(false, "GET", "/todos/%2e%2e", bearerHeader(alice)) // bad path
		if evs := log.take(); len(evs) != 0 {
			t.Fatalf("events = %+v", evs)
		}
	})
	t.Run("forward-auth decisions are reported with their surface", func(t *testing.T) {
		req := httptest.NewRequest("GET", "/.vigil/auth", nil)
		req.RemoteAddr = trustedAddr + ":4000"
		req.Header.Set("Authorization", "Bearer "+alice)
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("X-Original-Uri", "/todos/9")
		w := httptest.NewRecorder()
		h.gw.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		evs := log.take()
		if len(evs) != 1 || evs[0].Surface != SurfaceForwardAuth || evs[0].ResourceID != "9" {
			t.Fatalf("events = %+v", evs)
		}
	})
}

// TestObserveAllocatesNothing pins the promise of Options.Observe: building
// and handing over an Event costs no allocation.
func TestObserveAllocatesNothing(t *testing.T) {
	var sink Event
	g := &Gateway{obs: func(e Event) { sink = e }}
	r := httptest.NewRequest("GET", "/todos/1", nil)
	r.Header.Set("User-Agent", "x")
	c := &call{ip: netip.MustParseAddr("192.0.2.1")}
	allocs := testing.AllocsPerRun(100, func() { g.observe(r, c, SurfaceGateway, OutcomeAllow, sink.Time) })
	if allocs != 0 {
		t.Fatalf("observe allocates %.0f times per call", allocs)
	}
}
