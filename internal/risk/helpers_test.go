package risk

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/state"
)

// t0 is the tests' clock origin.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// fakePublisher records valid signals; it fails the next fail calls.
type fakePublisher struct {
	mu   sync.Mutex
	sigs []state.Signal
	fail int
}

func (f *fakePublisher) Publish(_ context.Context, sig state.Signal) (uint64, error) {
	if err := sig.Validate(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return 0, errors.New("journal unavailable")
	}
	f.sigs = append(f.sigs, sig)
	return uint64(len(f.sigs)), nil
}

func (f *fakePublisher) take() []state.Signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.sigs
	f.sigs = nil
	return out
}

// testClock is an adjustable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// testEngine builds an engine (not running) with a fake publisher and an
// adjustable clock; mutate adjusts the configuration.
func testEngine(t testing.TB, mutate func(*Config)) (*Engine, *fakePublisher, *testClock) {
	t.Helper()
	var cfg Config
	if mutate != nil {
		mutate(&cfg)
	}
	pub := &fakePublisher{}
	clk := &testClock{t: t0}
	e, err := New(Options{Config: cfg, Publisher: pub, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return e, pub, clk
}

// feed processes events synchronously and writes the publications they
// cause, as Run and the publisher goroutine would.
func (e *Engine) feed(evs ...Event) {
	e.mu.Lock()
	for i := range evs {
		e.process(&evs[i])
	}
	e.mu.Unlock()
	e.m.processed.Add(float64(len(evs)))
	e.drain()
}

// tickAt runs a tick at t and writes the publications it causes.
func (e *Engine) tickAt(t time.Time) {
	e.mu.Lock()
	e.tick(stampOf(t))
	e.mu.Unlock()
	e.drain()
}

// drain writes queued publications and applies failures.
func (e *Engine) drain() {
	for {
		select {
		case j := <-e.jobs:
			e.write(context.Background(), j)
			continue
		default:
		}
		break
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		select {
		case f := <-e.failures:
			e.failed(f)
			continue
		default:
		}
		return
	}
}

// contribs returns the live contributions of a user as detector → points.
func (e *Engine) userContribs(iss, sub string) map[string]int {
	rep := e.Inspect(ReportQuery{Issuer: iss, Subject: sub})
	out := map[string]int{}
	for _, s := range rep.Subjects {
		for _, c := range s.Contributions {
			out[c.Detector] = max(out[c.Detector], c.Points)
		}
	}
	return out
}

const testIssuer = "https://idp.example"

// ev is an event of alice at t0+at.
func ev(at time.Duration, mods ...func(*Event)) Event {
	e := Event{
		Time: t0.Add(at), Outcome: Allowed, Issuer: testIssuer, Subject: "alice",
		SessionID: "s-1", TokenID: "t-1", IP: netip.MustParseAddr("198.51.100.7"),
		UserAgent: "Mozilla/5.0 (test)", Action: "GET /todos/{id}", ResourceType: "Todo", ResourceID: "1",
	}
	for _, m := range mods {
		m(&e)
	}
	return e
}

// Locations for travel tests.
var (
	berlin = func(e *Event) {
		e.Country, e.Latitude, e.Longitude, e.AccuracyKM, e.Located = "DE", 52.52, 13.405, 20, true
	}
	munich = func(e *Event) {
		e.Country, e.Latitude, e.Longitude, e.AccuracyKM, e.Located = "DE", 48.137, 11.575, 20, true
	}
	potsdam = func(e *Event) {
		e.Country, e.Latitude, e.Longitude, e.AccuracyKM, e.Located = "DE", 52.39, 13.065, 20, true
	}
	newYork = func(e *Event) {
		e.Country, e.Latitude, e.Longitude, e.AccuracyKM, e.Located = "US", 40.7128, -74.006, 20, true
	}
	prague = func(e *Event) {
		e.Country, e.Latitude, e.Longitude, e.AccuracyKM, e.Located = "CZ", 50.0755, 14.4378, 500, true
	}
)

func outcome(o Outcome) func(*Event) { return func(e *Event) { e.Outcome = o } }
func ip(a string) func(*Event)       { return func(e *Event) { e.IP = netip.MustParseAddr(a) } }
func ua(s string) func(*Event)       { return func(e *Event) { e.UserAgent = s } }
func device(s string) func(*Event)   { return func(e *Event) { e.DeviceID = s } }
func country(c string) func(*Event)  { return func(e *Event) { e.Country = c } }
func sub(s string) func(*Event)      { return func(e *Event) { e.Subject = s } }
func sid(s string) func(*Event)      { return func(e *Event) { e.SessionID = s } }
func token(s string) func(*Event)    { return func(e *Event) { e.TokenID = s } }
func resource(id string) func(*Event) {
	return func(e *Event) { e.ResourceID = id }
}
