package risk

import (
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"testing"
	"time"
)

// defaults returns the default configuration.
func defaults(mutate func(*Config)) *Config {
	var c Config
	if mutate != nil {
		mutate(&c)
	}
	c.SetDefaults()
	return &c
}

// burst is n requests at offset at (seconds after t0).
type burst struct {
	at int
	n  int
}

// run replays bursts through one rate detector and reports, per rule, the
// 1-based request number that first produced a contribution.
func runRate(d *rateDetector, bursts []burst, ceiling int) map[rule]int {
	var st rateState
	var sc scoring
	fired := map[rule]int{}
	i := 0
	for _, b := range bursts {
		now := stampOf(t0.Add(time.Duration(b.at) * time.Second))
		for range b.n {
			i++
			d.observe(&st, &sc, now, ceiling, "user")
			for _, c := range sc.contribs {
				if _, ok := fired[c.rule]; !ok {
					fired[c.rule] = i
				}
			}
		}
	}
	return fired
}

// steady is per-minute bursts of n requests for minutes [from, to).
func steady(from, to, n int) []burst {
	var out []burst
	for m := from; m < to; m++ {
		out = append(out, burst{at: m * 60, n: n})
	}
	return out
}

func TestRequestRate(t *testing.T) {
	cfg := defaults(nil)
	tests := []struct {
		name    string
		bursts  []burst
		ceiling int
		want    map[rule]int
	}{
		{
			name:   "a steady user stays quiet",
			bursts: steady(0, 30, 20),
			want:   map[rule]int{},
		},
		{
			name:   "a burst above eight times the baseline after warm-up is an anomaly at the first request over the limit",
			bursts: append(steady(0, 12, 20), burst{at: 12 * 60, n: 200}),
			// baseline after 12 windows of 20: 20·(1−0.8¹²) = 18.63; 8× = 149.
			want: map[rule]int{ruleRateAnomaly: 12*20 + 150},
		},
		{
			name:   "a quiet user's legitimate burst below min_requests is not an anomaly",
			bursts: append(steady(0, 20, 2), burst{at: 20 * 60, n: 110}),
			want:   map[rule]int{},
		},
		{
			name:   "a new subject has no baseline yet: only the ceiling applies",
			bursts: []burst{{at: 0, n: 1300}},
			want:   map[rule]int{ruleRateCeiling: 1201},
		},
		{
			name:    "a session ceiling is lower",
			bursts:  []burst{{at: 0, n: 700}},
			ceiling: 600,
			want:    map[rule]int{ruleRateCeiling: 601},
		},
		{
			name:   "requests spread over the window count together",
			bursts: []burst{{at: 0, n: 600}, {at: 30, n: 601}},
			want:   map[rule]int{ruleRateCeiling: 1201},
		},
		{
			name:   "the same volume over two windows is below the ceiling",
			bursts: []burst{{at: 0, n: 700}, {at: 60, n: 700}},
			want:   map[rule]int{},
		},
		{
			name: "anomalous windows do not teach the baseline: a second burst is still anomalous",
			bursts: append(append(steady(0, 12, 20), burst{at: 12 * 60, n: 200}),
				burst{at: 13*60 + 61, n: 200}), // two windows later, after the refire gap
			want: map[rule]int{ruleRateAnomaly: 12*20 + 150},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newRateDetector(&cfg.Detectors.RequestRate, newRules(cfg))
			ceiling := tt.ceiling
			if ceiling == 0 {
				ceiling = d.subject
			}
			got := runRate(d, tt.bursts, ceiling)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("fired = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("the second burst refreshes the anomaly", func(t *testing.T) {
		d := newRateDetector(&cfg.Detectors.RequestRate, newRules(cfg))
		var st rateState
		var sc scoring
		for _, b := range append(append(steady(0, 12, 20), burst{at: 12 * 60, n: 200}), burst{at: 14*60 + 5, n: 200}) {
			for range b.n {
				d.observe(&st, &sc, stampOf(t0.Add(time.Duration(b.at)*time.Second)), d.subject, "user")
			}
		}
		if len(sc.contribs) != 1 || sc.contribs[0].at != stampOf(t0.Add((14*60+5)*time.Second)) {
			t.Fatalf("contributions = %+v", sc.contribs)
		}
		if !strings.HasPrefix(sc.contribs[0].reason, "request_rate: 1") || !strings.Contains(sc.contribs[0].reason, "its usual") {
			t.Errorf("reason = %q", sc.contribs[0].reason)
		}
	})
	t.Run("a switched-off detector contributes nothing", func(t *testing.T) {
		off := false
		c := defaults(func(c *Config) { c.Detectors.RequestRate.Enabled = &off })
		d := newRateDetector(&c.Detectors.RequestRate, newRules(c))
		if d.enabled() {
			t.Fatal("enabled")
		}
		if got := runRate(d, []burst{{at: 0, n: 2000}}, d.subject); len(got) != 0 {
			t.Fatalf("fired = %v", got)
		}
	})
}

func TestSlidingCount(t *testing.T) {
	const win = 60
	tests := []struct {
		name   string
		adds   []int // seconds after t0, one event each
		at     int
		want   int
		within int
	}{
		{name: "counts events in the current window", adds: []int{0, 1, 2, 3}, at: 3, want: 4},
		{name: "weights the previous window by its overlap", adds: repeat(0, 10), at: 90, want: 5},
		{name: "forgets windows older than two windows", adds: repeat(0, 10), at: 130, want: 0},
		{name: "a steady trickle estimates its rate", adds: every(0, 300, 6), at: 300, want: 10, within: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w slidingCount
			for _, s := range tt.adds {
				w.add(stampOf(t0.Add(time.Duration(s)*time.Second)), win)
			}
			got := w.estimate(stampOf(t0.Add(time.Duration(tt.at)*time.Second)), win)
			if d := got - tt.want; d > tt.within || -d > tt.within {
				t.Errorf("estimate = %d, want %d±%d", got, tt.want, tt.within)
			}
		})
	}
}

func repeat(s, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func every(from, to, step int) []int {
	var out []int
	for s := from; s < to; s += step {
		out = append(out, s)
	}
	return out
}

func TestDeniedBurst(t *testing.T) {
	cfg := defaults(nil)
	type req struct {
		at  int
		o   Outcome
		n   int
		hit bool // from the address under test
	}
	tests := []struct {
		name string
		reqs []req
		// address failures recorded before the subject's request
		addrFailures int
		want         map[rule]int
	}{
		{name: "19 denials in a minute are tolerated", reqs: []req{{0, Denied, 19, false}}, want: map[rule]int{}},
		{name: "the 20th denial within a minute is probing", reqs: []req{{0, Denied, 25, false}}, want: map[rule]int{ruleDenied: 20}},
		{name: "the 50th denial raises it", reqs: []req{{0, Denied, 60, false}}, want: map[rule]int{ruleDenied: 20, ruleDeniedHigh: 50}},
		{name: "step-up challenges and revoked tokens count as denials", reqs: []req{{0, SteppedUp, 10, false}, {1, Revoked, 10, false}}, want: map[rule]int{ruleDenied: 20}},
		{name: "allowed requests do not count", reqs: []req{{0, Allowed, 100, false}, {1, Denied, 5, false}}, want: map[rule]int{}},
		{name: "denials spread over minutes stay below the threshold", reqs: []req{{0, Denied, 15, false}, {150, Denied, 15, false}, {300, Denied, 15, false}}, want: map[rule]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeniedDetector(&cfg.Detectors.DeniedBurst, newRules(cfg))
			var st slidingCount
			var sc scoring
			fired := map[rule]int{}
			i := 0
			for _, r := range tt.reqs {
				for range r.n {
					i++
					d.observeSubject(&st, &sc, stampOf(t0.Add(time.Duration(r.at)*time.Second)), r.o)
					for _, c := range sc.contribs {
						if _, ok := fired[c.rule]; !ok {
							fired[c.rule] = i
						}
					}
				}
			}
			if fmt.Sprint(fired) != fmt.Sprint(tt.want) {
				t.Errorf("fired = %v, want %v", fired, tt.want)
			}
		})
	}
}

func TestFailedAddress(t *testing.T) {
	tests := []struct {
		name     string
		failures int
		want     bool
	}{
		{name: "a request from an address with 25 recent failures is suspicious", failures: 25, want: true},
		{name: "an address with a few failures is not", failures: 5, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEngine(t, nil)
			var evs []Event
			for range tt.failures {
				evs = append(evs, ev(0, outcome(Unauthenticated), sub(""), sid(""), ip("203.0.113.9")))
			}
			evs = append(evs, ev(time.Second, ip("203.0.113.9")), ev(time.Second, sub("bob"), ip("198.51.100.1")))
			e.feed(evs...)
			_, got := e.userContribs(testIssuer, "alice")["denied_burst"]
			if got != tt.want {
				t.Errorf("alice flagged = %v, want %v", got, tt.want)
			}
			if _, bob := e.userContribs(testIssuer, "bob")["denied_burst"]; bob {
				t.Error("bob, on another address, was flagged")
			}
		})
	}
	t.Run("addresses: false keeps no address state", func(t *testing.T) {
		off := false
		e, _, _ := testEngine(t, func(c *Config) { c.Detectors.DeniedBurst.Addresses = &off })
		e.feed(ev(0, outcome(Unauthenticated), sub("")))
		if e.addrs.len() != 0 {
			t.Fatalf("%d addresses tracked", e.addrs.len())
		}
	})
}

func TestImpossibleTravel(t *testing.T) {
	cfg := defaults(nil)
	type hop struct {
		at    time.Duration
		where func(*Event)
	}
	tests := []struct {
		name string
		hops []hop
		want string // "" for no contribution, else a reason substring
	}{
		{name: "Berlin to New York in ten minutes is impossible", hops: []hop{{0, berlin}, {10 * time.Minute, newYork}}, want: "(DE → US) in 10m0s"},
		{name: "Berlin to New York in the same second is impossible", hops: []hop{{0, berlin}, {0, newYork}}, want: "DE → US"},
		{name: "Berlin to New York in nine hours is a flight", hops: []hop{{0, berlin}, {9 * time.Hour, newYork}}},
		{name: "Berlin to Munich in two hours is plausible", hops: []hop{{0, berlin}, {2 * time.Hour, munich}}},
		{name: "Berlin to Munich in five minutes is not", hops: []hop{{0, berlin}, {5 * time.Minute, munich}}, want: "DE → DE"},
		{name: "jumps shorter than min_distance_km are GeoIP noise", hops: []hop{{0, berlin}, {time.Second, potsdam}}},
		{name: "large accuracy radii absorb the distance", hops: []hop{{0, berlin}, {time.Second, prague}}},
		{name: "requests without a location neither trigger nor reset", hops: []hop{{0, berlin}, {time.Minute, nil}, {2 * time.Minute, newYork}}, want: "in 2m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTravelDetector(&cfg.Detectors.ImpossibleTravel, newRules(cfg))
			var st place
			var sc scoring
			for _, h := range tt.hops {
				e := ev(h.at)
				if h.where != nil {
					h.where(&e)
				}
				d.observe(&st, &sc, stampOf(e.Time), &e, "user")
			}
			switch {
			case tt.want == "" && len(sc.contribs) > 0:
				t.Errorf("unexpected contribution %q", sc.contribs[0].reason)
			case tt.want != "" && (len(sc.contribs) != 1 || !strings.Contains(sc.contribs[0].reason, tt.want)):
				t.Errorf("contributions = %+v, want a reason with %q", sc.contribs, tt.want)
			}
		})
	}
}

func TestHaversine(t *testing.T) {
	if d := haversineKM(52.52, 13.405, 40.7128, -74.006); math.Abs(d-6385) > 10 {
		t.Errorf("Berlin–New York = %.0f km, want about 6385", d)
	}
	if d := haversineKM(10, 10, 10, 10); d != 0 {
		t.Errorf("same point = %v", d)
	}
}

func TestSessionHijack(t *testing.T) {
	cfg := defaults(nil)
	tests := []struct {
		name string
		reqs []Event
		want string
	}{
		{
			name: "a new address in the same network is not new",
			reqs: []Event{ev(0), ev(time.Minute, ip("198.51.100.99"), ua("curl/8"))},
		},
		{
			name: "a new network with the same user agent is a roaming user",
			reqs: []Event{ev(0), ev(time.Minute, ip("203.0.113.5"))},
		},
		{
			name: "a new network with a new user agent at once is a hijack hint",
			reqs: []Event{ev(0), ev(time.Minute, ip("203.0.113.5"), ua("python-requests/2.31"))},
			want: "new network (203.0.113.0/24) with a new user agent",
		},
		{
			name: "a new network with a new device at once is a hijack hint",
			reqs: []Event{ev(0, device("laptop")), ev(time.Minute, ip("203.0.113.5"), device("unknown-phone"))},
			want: "with a new device",
		},
		{
			name: "IPv6 addresses are grouped by /48",
			reqs: []Event{ev(0, ip("2001:db8:1:2::1")), ev(time.Minute, ip("2001:db8:1:ff::9"), ua("other"))},
		},
		{
			name: "two countries within ten minutes are concurrent use",
			reqs: []Event{ev(0, country("DE")), ev(3*time.Minute, country("BR"))},
			want: "used from DE and BR within 3m0s",
		},
		{
			name: "two countries hours apart are travel, not concurrency",
			reqs: []Event{ev(0, country("DE")), ev(3*time.Hour, country("BR"))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newHijackDetector(&cfg.Detectors.SessionHijack, newRules(cfg), maphash.MakeSeed())
			var st fingerprints
			var sc scoring
			for i := range tt.reqs {
				d.observe(&st, &sc, stampOf(tt.reqs[i].Time), &tt.reqs[i], "session")
			}
			switch {
			case tt.want == "" && len(sc.contribs) > 0:
				t.Errorf("unexpected contribution %q", sc.contribs[0].reason)
			case tt.want != "" && (len(sc.contribs) != 1 || !strings.Contains(sc.contribs[0].reason, tt.want)):
				t.Errorf("contributions = %+v, want a reason with %q", sc.contribs, tt.want)
			}
		})
	}
}

func TestNewDeviceAndCountry(t *testing.T) {
	cfg := defaults(nil)
	tests := []struct {
		name string
		reqs []Event
		want []string // reason substrings, in order of rules
	}{
		{
			name: "devices and countries seen while learning are not new",
			reqs: []Event{ev(0, device("a"), country("DE")), ev(30*time.Minute, device("b"), country("FR"))},
		},
		{
			name: "after learning, a new device is flagged",
			reqs: []Event{ev(0, device("a")), ev(2*time.Hour, device("b"))},
			want: []string{`new_device: first request from device "b"`},
		},
		{
			name: "after learning, a known device is not",
			reqs: []Event{ev(0, device("a")), ev(2*time.Hour, device("a"))},
		},
		{
			name: "after learning, a new country is flagged with the known ones",
			reqs: []Event{ev(0, country("DE")), ev(10*time.Minute, country("AT")), ev(3*time.Hour, country("US"))},
			want: []string{"new_country: first request from US (known: DE, AT)"},
		},
		{
			name: "device ids are quoted in reasons",
			reqs: []Event{ev(0, device("a")), ev(2*time.Hour, device("ev\"il\n"+strings.Repeat("x", 100)))},
			want: []string{`device "ev\"il\nxxxx`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed := maphash.MakeSeed()
			d := newNewContextDetector(&cfg.Detectors.NewDevice, &cfg.Detectors.NewCountry, newRules(cfg), seed)
			var st known
			var sc scoring
			first := stampOf(tt.reqs[0].Time)
			for i := range tt.reqs {
				d.observe(&st, &sc, stampOf(tt.reqs[i].Time), first, &tt.reqs[i])
			}
			if len(sc.contribs) != len(tt.want) {
				t.Fatalf("contributions = %+v, want %d", sc.contribs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(sc.contribs[i].reason, w) {
					t.Errorf("reason %q does not contain %q", sc.contribs[i].reason, w)
				}
			}
		})
	}
	t.Run("only the last eight devices are remembered", func(t *testing.T) {
		d := newNewContextDetector(&cfg.Detectors.NewDevice, &cfg.Detectors.NewCountry, newRules(cfg), maphash.MakeSeed())
		var st known
		var sc scoring
		for i := range 9 {
			e := ev(0, device(fmt.Sprint("d", i)))
			d.observe(&st, &sc, stampOf(e.Time), stampOf(t0), &e)
		}
		e := ev(2*time.Hour, device("d0"))
		d.observe(&st, &sc, stampOf(e.Time), stampOf(t0), &e)
		if len(sc.contribs) != 1 {
			t.Fatalf("the forgotten first device should be new again: %+v", sc.contribs)
		}
	})
}

func TestEnumeration(t *testing.T) {
	cfg := defaults(nil)
	tests := []struct {
		name     string
		distinct int
		repeats  int
		// the rule must fire within [lo, hi] distinct resources (the count is
		// an estimate); lo = 0 means it must not fire
		rule   rule
		lo, hi int
	}{
		{name: "forty distinct resources in a minute are normal", distinct: 40, rule: ruleEnumeration},
		{name: "the same resource a thousand times is one resource", distinct: 1, repeats: 1000, rule: ruleEnumeration},
		{name: "about sixty distinct resources are enumeration", distinct: 120, rule: ruleEnumeration, lo: 50, hi: 80},
		{name: "about two hundred are a scraper", distinct: 400, rule: ruleEnumerationHigh, lo: 150, hi: 260},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Estimates depend on the hash seed: try several.
			for range 5 {
				d := newEnumDetector(&cfg.Detectors.Enumeration, newRules(cfg), maphash.MakeSeed())
				var st enumState
				var sc scoring
				firedAt := 0
				for i := 1; i <= tt.distinct; i++ {
					for range max(tt.repeats, 1) {
						e := ev(time.Duration(i%50)*time.Second, resource(fmt.Sprint(i)))
						d.observe(&st, &sc, stampOf(e.Time), &e)
					}
					for _, c := range sc.contribs {
						if c.rule == tt.rule && firedAt == 0 {
							firedAt = i
						}
					}
				}
				switch {
				case tt.lo == 0 && firedAt != 0:
					t.Fatalf("fired at %d distinct resources", firedAt)
				case tt.lo != 0 && (firedAt < tt.lo || firedAt > tt.hi):
					t.Fatalf("fired at %d distinct resources, want %d-%d", firedAt, tt.lo, tt.hi)
				}
			}
		})
	}
	t.Run("a new window starts from zero", func(t *testing.T) {
		d := newEnumDetector(&cfg.Detectors.Enumeration, newRules(cfg), maphash.MakeSeed())
		var st enumState
		var sc scoring
		for i := range 40 {
			e := ev(0, resource(fmt.Sprint(i)))
			d.observe(&st, &sc, stampOf(e.Time), &e)
		}
		for i := range 40 {
			e := ev(61*time.Second, resource(fmt.Sprint(100+i)))
			d.observe(&st, &sc, stampOf(e.Time), &e)
		}
		if len(sc.contribs) != 0 || st.distinct() > 50 {
			t.Fatalf("two windows of 40 were merged: %d, %+v", st.distinct(), sc.contribs)
		}
	})
}
