package risk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-authz/vigil/internal/state"
)

func TestScore(t *testing.T) {
	s := defaults(nil).Score
	at := stampOf(t0)
	c := func(ru rule, points uint8) contribution {
		return contribution{rule: ru, points: points, at: at, expires: at.add(3600)}
	}
	tests := []struct {
		name      string
		contribs  []contribution
		after     time.Duration
		wantScore int
		wantLevel level
	}{
		{name: "no contribution is LOW 0", wantScore: 0, wantLevel: levelLow},
		{name: "one contribution is its points", contribs: []contribution{c(ruleTravel, 80)}, wantScore: 80, wantLevel: levelHigh},
		{name: "two detectors combine as 1-(1-p)(1-q)", contribs: []contribution{c(ruleTravel, 50), c(ruleHijack, 50)}, wantScore: 75, wantLevel: levelHigh},
		{name: "weak signals add up to MEDIUM", contribs: []contribution{c(ruleNewDevice, 20), c(ruleNewCountry, 30)}, wantScore: 44, wantLevel: levelMedium},
		{name: "within one detector only the strongest counts", contribs: []contribution{c(ruleDenied, 60), c(ruleDeniedHigh, 85)}, wantScore: 85, wantLevel: levelHigh},
		{name: "a contribution counts in full for the first half of its life", contribs: []contribution{c(ruleTravel, 80)}, after: 30 * time.Minute, wantScore: 80, wantLevel: levelHigh},
		{name: "then fades linearly", contribs: []contribution{c(ruleTravel, 80)}, after: 45 * time.Minute, wantScore: 40, wantLevel: levelMedium},
		{name: "and is gone at its expiry", contribs: []contribution{c(ruleTravel, 80)}, after: time.Hour, wantScore: 0, wantLevel: levelLow},
		{name: "the score never exceeds 100", contribs: []contribution{c(ruleTravel, 100), c(ruleHijack, 100)}, wantScore: 100, wantLevel: levelHigh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := scoring{contribs: tt.contribs}
			got := sc.score(stampOf(t0.Add(tt.after)), *s.Fade)
			if got != tt.wantScore || levelOf(got, &s) != tt.wantLevel {
				t.Errorf("score = %d (%s), want %d (%s)", got, levelOf(got, &s), tt.wantScore, tt.wantLevel)
			}
		})
	}
}

// risks summarises signals as "PRINCIPAL subject LEVEL score".
func risks(sigs []state.Signal) []string {
	var out []string
	for _, s := range sigs {
		id := s.Subject.Sub
		if s.Subject.Format == state.FormatOpaque {
			id = s.Subject.ID
		}
		out = append(out, fmt.Sprintf("%s %s %s %d", s.Risk.Principal, id, s.Risk.Level, *s.Risk.Score))
	}
	return out
}

func TestEnginePublishesLevelChanges(t *testing.T) {
	t.Run("a user seen in Berlin and New York minutes apart becomes HIGH, and so does the session", func(t *testing.T) {
		e, pub, _ := testEngine(t, nil)
		e.feed(ev(0, berlin), ev(5*time.Minute, newYork))
		sigs := pub.take()
		// The session also shows two countries within ten minutes.
		if got, want := strings.Join(risks(sigs), ", "), "SESSION s-1 HIGH 96, USER alice HIGH 80"; got != want {
			t.Fatalf("signals = %s, want %s", got, want)
		}
		u := sigs[1]
		if u.Source != Source || u.Kind != state.KindRiskLevelChange || u.Subject.Format != state.FormatIssSub ||
			u.Subject.Iss != testIssuer || u.Risk.PreviousLevel != "LOW" || !u.EventTime.Equal(t0.Add(5*time.Minute)) ||
			!strings.HasPrefix(u.ID, "risk:") {
			t.Errorf("user signal = %+v", u)
		}
		if len(u.Risk.Reasons) != 1 || !strings.HasPrefix(u.Risk.Reasons[0], "impossible_travel: this user moved 6385 km (DE → US) in 5m0s") {
			t.Errorf("reasons = %q", u.Risk.Reasons)
		}
		if s := sigs[0]; s.Subject.Format != state.FormatOpaque || s.Risk.Principal != PrincipalSession || len(s.Risk.Reasons) != 2 {
			t.Errorf("session signal = %+v", s)
		}
	})
	t.Run("ordinary traffic publishes nothing", func(t *testing.T) {
		e, pub, _ := testEngine(t, nil)
		var evs []Event
		for i := range 300 {
			evs = append(evs, ev(time.Duration(i)*2*time.Second, berlin, resource(fmt.Sprint(i%30))))
		}
		e.feed(evs...)
		if sigs := pub.take(); len(sigs) != 0 {
			t.Fatalf("signals = %v", risks(sigs))
		}
		if len(e.active) != 0 {
			t.Errorf("%d active keys", len(e.active))
		}
	})
	t.Run("more evidence at the same level publishes nothing more", func(t *testing.T) {
		e, pub, _ := testEngine(t, nil)
		e.feed(ev(0, berlin), ev(time.Minute, newYork))
		pub.take()
		e.feed(ev(3*time.Minute, berlin), ev(4*time.Minute, newYork), ev(5*time.Minute, berlin))
		if sigs := pub.take(); len(sigs) != 0 {
			t.Fatalf("signals = %v", risks(sigs))
		}
	})
}

func TestEngineLevelsFade(t *testing.T) {
	e, pub, _ := testEngine(t, func(c *Config) { c.Detectors.SessionHijack.Enabled = new(bool) })
	e.feed(ev(0, berlin, sid("")), ev(time.Minute, newYork, sid("")))
	if got := risks(pub.take()); fmt.Sprint(got) != "[USER alice HIGH 80]" {
		t.Fatalf("signals = %v", got)
	}
	steps := []struct {
		after time.Duration
		want  string
	}{
		{30 * time.Minute, "[]"},                     // full strength for half the TTL
		{41 * time.Minute, "[USER alice MEDIUM 51]"}, // 80 × 19/30
		{50 * time.Minute, "[USER alice LOW 27]"},    // 80 × 10/30
		{53 * time.Minute, "[]"},
		{2 * time.Hour, "[]"},
	}
	for _, s := range steps {
		e.tickAt(t0.Add(time.Minute + s.after))
		if got := fmt.Sprint(risks(pub.take())); got != s.want {
			t.Errorf("after %s: signals = %s, want %s", s.after, got, s.want)
		}
	}
	if len(e.active) != 0 {
		t.Errorf("%d keys still active after the risk faded", len(e.active))
	}
}

func TestEngineScoreUpdatesAreRateLimited(t *testing.T) {
	e, pub, _ := testEngine(t, func(c *Config) { c.Detectors.SessionHijack.Enabled = new(bool) })
	e.feed(ev(0, berlin, sid("")), ev(time.Minute, newYork, sid("")))
	pub.take()
	// 50 denials add denied_burst 85: 1−0.2·0.15 = 97, 17 above the
	// published 80 — but within publish.min_interval of it.
	var evs []Event
	for range 50 {
		evs = append(evs, ev(time.Minute+10*time.Second, outcome(Denied), sid("")))
	}
	e.feed(evs...)
	if sigs := pub.take(); len(sigs) != 0 {
		t.Fatalf("score update within min_interval: %v", risks(sigs))
	}
	e.tickAt(t0.Add(2*time.Minute + 5*time.Second))
	if got := fmt.Sprint(risks(pub.take())); got != "[USER alice HIGH 97]" {
		t.Fatalf("signals = %s", got)
	}
}

func TestEngineRetriesFailedPublications(t *testing.T) {
	e, pub, _ := testEngine(t, func(c *Config) { c.Detectors.SessionHijack.Enabled = new(bool) })
	pub.fail = 1
	e.feed(ev(0, berlin, sid("")), ev(time.Minute, newYork, sid("")))
	if sigs := pub.take(); len(sigs) != 0 {
		t.Fatalf("signals = %v", risks(sigs))
	}
	if got := counterValue(e.m.publishes.WithLabelValues("error")); got != 1 {
		t.Errorf("publish errors = %v", got)
	}
	e.tickAt(t0.Add(2 * time.Minute))
	if got := fmt.Sprint(risks(pub.take())); got != "[USER alice HIGH 80]" {
		t.Fatalf("after a tick: signals = %s", got)
	}
}

func TestEnginePublishRateLimit(t *testing.T) {
	e, pub, clk := testEngine(t, func(c *Config) {
		c.Publish.Rate = 1
		c.Detectors.SessionHijack.Enabled = new(bool)
	})
	var evs []Event
	for _, u := range []string{"u1", "u2", "u3"} {
		evs = append(evs, ev(0, berlin, sid(""), sub(u)), ev(time.Minute, newYork, sid(""), sub(u)))
	}
	e.feed(evs...)
	if n := len(pub.take()); n != 1 {
		t.Fatalf("%d signals in the first second, want 1", n)
	}
	clk.set(t0.Add(3 * time.Second))
	e.tickAt(t0.Add(2 * time.Minute))
	if n := len(pub.take()); n != 1 {
		t.Fatalf("%d signals a second later, want 1", n)
	}
	clk.set(t0.Add(10 * time.Second))
	e.tickAt(t0.Add(2 * time.Minute))
	if n := len(pub.take()); n != 1 {
		t.Fatalf("%d signals later, want the last 1", n)
	}
}

func TestObserveNeverBlocks(t *testing.T) {
	e, _, _ := testEngine(t, func(c *Config) { c.QueueSize = 4 })
	x := ev(0)
	for range 10 {
		e.Observe(x) // Run is not running: the queue fills up
	}
	if got := counterValue(e.m.dropped); got != 6 {
		t.Fatalf("dropped = %v, want 6", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { e.Observe(x) }); allocs != 0 {
		t.Fatalf("Observe allocates %.0f times", allocs)
	}
}

func TestEngineBoundsMemory(t *testing.T) {
	e, _, _ := testEngine(t, func(c *Config) {
		c.Limits.Subjects, c.Limits.Sessions, c.Limits.Tokens, c.Limits.Addresses = 100, 50, 10, 20
	})
	var evs []Event
	for i := range 1000 {
		u := fmt.Sprint("user-", i)
		evs = append(evs, ev(time.Duration(i)*time.Second, sub(u), sid(fmt.Sprint("s-", i)), outcome(Denied)))
		evs = append(evs, ev(time.Duration(i)*time.Second, sub(""), ip(fmt.Sprintf("10.0.%d.%d", i/256, i%256)), outcome(Unauthenticated)))
		evs = append(evs, ev(time.Duration(i)*time.Second, sub(u), sid(""), func(e *Event) { e.TokenID = fmt.Sprint("t-", i) }))
	}
	e.feed(evs...)
	if s, ss, tk, a := e.subjects.len(), e.sessions.len(), e.tokens.len(), e.addrs.len(); s != 100 || ss != 50 || tk != 10 || a != 20 {
		t.Fatalf("tracked subjects %d, sessions %d, tokens %d, addresses %d; want the limits 100, 50, 10, 20", s, ss, tk, a)
	}
	if got := counterValue(e.m.evictions.WithLabelValues(tableSubjects, "size")); got != 900 {
		t.Errorf("subject evictions = %v, want 900", got)
	}
	// The most recently seen are kept.
	if e.userContribs(testIssuer, "user-999") == nil || len(e.Inspect(ReportQuery{Subject: "user-0"}).Subjects) != 0 {
		t.Error("eviction did not drop the least recently seen")
	}
	e.tickAt(t0.Add(1000*time.Second + 25*time.Hour))
	if s, ss, tk, a := e.subjects.len(), e.sessions.len(), e.tokens.len(), e.addrs.len(); s+ss+tk+a != 0 {
		t.Fatalf("after idle_ttl: subjects %d, sessions %d, tokens %d, addresses %d", s, ss, tk, a)
	}
}

func TestEngineIgnoresOversizedIdentifiers(t *testing.T) {
	e, _, _ := testEngine(t, nil)
	e.feed(ev(0, sub(strings.Repeat("x", 2000))))
	if e.subjects.len() != 0 || counterValue(e.m.ignored) != 1 {
		t.Fatalf("subjects %d, ignored %v", e.subjects.len(), counterValue(e.m.ignored))
	}
}

func TestEngineRunAndFlush(t *testing.T) {
	reg := prometheus.NewRegistry()
	pub := &fakePublisher{}
	e, err := New(Options{Publisher: pub, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				e.Observe(ev(time.Duration(i)*time.Second, sub(fmt.Sprint("w", w)), sid(""), token(fmt.Sprint("t", w)), berlin))
			}
			e.Observe(ev(200*time.Second+time.Minute, sub(fmt.Sprint("w", w)), sid(""), token(fmt.Sprint("t", w)), newYork))
		}()
	}
	wg.Wait()
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	if err := e.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if n := len(pub.take()); n != 4 {
		t.Errorf("%d signals after Flush, want 4 (one per user)", n)
	}
	if err := e.Run(ctx); err == nil {
		t.Error("a second Run must fail")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := counterValue(e.m.processed); got != 804 {
		t.Errorf("processed = %v, want 804", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"vigil_risk_events_total", "vigil_risk_queue_length", "vigil_risk_detections_total", "vigil_risk_publish_total"} {
		if !names[n] {
			t.Errorf("metric %s is not on the registry", n)
		}
	}
}

func TestAdminHandler(t *testing.T) {
	e, _, clk := testEngine(t, nil)
	e.feed(ev(0, berlin), ev(2*time.Minute, newYork))
	clk.set(t0.Add(3 * time.Minute))
	h := e.AdminHandler()
	get := func(q string) (int, Report) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/admin/v1/risk?"+q, nil))
		var r Report
		if rec.Code == 200 {
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
		}
		return rec.Code, r
	}
	t.Run("a user's score, level, contributions and sessions", func(t *testing.T) {
		code, r := get("sub=alice")
		if code != 200 || len(r.Subjects) != 1 {
			t.Fatalf("%d %+v", code, r)
		}
		s := r.Subjects[0]
		if s.Issuer != testIssuer || s.Score != 80 || s.Level != "HIGH" || s.Published.Level != "HIGH" || len(s.Contributions) != 1 ||
			s.Contributions[0].Detector != "impossible_travel" || s.Contributions[0].Effective != 80 ||
			!s.Contributions[0].Expires.Equal(t0.Add(2*time.Minute+time.Hour)) || !s.FirstSeen.Equal(t0) {
			t.Errorf("subject = %+v", s)
		}
		if len(s.Sessions) != 1 || s.Sessions[0].SessionID != "s-1" || s.Sessions[0].Level != "HIGH" || len(s.Sessions[0].Contributions) != 2 {
			t.Errorf("sessions = %+v", s.Sessions)
		}
	})
	t.Run("a session alone", func(t *testing.T) {
		if code, r := get("sid=s-1&iss=" + testIssuer); code != 200 || len(r.Sessions) != 1 || r.Sessions[0].Score != 96 {
			t.Fatalf("%d %+v", code, r)
		}
	})
	t.Run("an unknown user is an empty list", func(t *testing.T) {
		if code, r := get("sub=nobody"); code != 200 || r.Subjects == nil || len(r.Subjects) != 0 {
			t.Fatalf("%d %+v", code, r)
		}
	})
	t.Run("an unknown issuer is not interned by a lookup", func(t *testing.T) {
		get("sub=alice&iss=https://other")
		if len(e.issuers.names) != 1 {
			t.Fatalf("issuers = %v", e.issuers.names)
		}
	})
	t.Run("no sub and no sid is a bad request", func(t *testing.T) {
		if code, _ := get(""); code != http.StatusBadRequest {
			t.Fatalf("status %d", code)
		}
	})
	t.Run("oversized parameters are a bad request", func(t *testing.T) {
		if code, _ := get("sub=" + strings.Repeat("a", 2000)); code != http.StatusBadRequest {
			t.Fatalf("status %d", code)
		}
	})
}

func TestIssuerKeys(t *testing.T) {
	var is issuers
	is.idx = map[string]uint16{}
	k := string(is.key(nil, "https://a", "u1"))
	if iss, id := is.split(k); iss != "https://a" || id != "u1" || len(k) != 4 {
		t.Fatalf("split(%q) = %q, %q", k, iss, id)
	}
	for i := range maxIssuers {
		is.key(nil, fmt.Sprint("iss-", i), "x")
	}
	k = string(is.key(nil, "https://overflow", "u2"))
	if iss, id := is.split(k); iss != "https://overflow" || id != "u2" {
		t.Fatalf("overflow split(%q) = %q, %q", k, iss, id)
	}
	if len(is.names) != maxIssuers {
		t.Fatalf("%d issuers interned", len(is.names))
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
