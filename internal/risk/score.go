package risk

import (
	"math"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-authz/vigil/internal/state"
)

// detector identifies a detector; its name is the config key and the
// prefix of its reasons.
type detector uint8

const (
	detRequestRate detector = iota
	detDeniedBurst
	detImpossibleTravel
	detSessionHijack
	detNewDevice
	detNewCountry
	detEnumeration
	detCarriedOver
	numDetectors
)

// detectorNames are the detectors' names (config keys, reason prefixes).
var detectorNames = [numDetectors]string{
	"request_rate", "denied_burst", "impossible_travel", "session_hijack",
	"new_device", "new_country", "enumeration", "carried_over",
}

func (d detector) String() string { return detectorNames[d] }

// DetectorNames returns the detectors' names (the keys under risk.detectors, and carried_over).
func DetectorNames() []string { return slices.Clone(detectorNames[:]) }

// rule is one way a detector contributes: a detector may have several
// (an anomaly and a ceiling, a threshold and a high threshold) with their
// own points. Within a detector only the strongest contribution counts.
type rule uint8

const (
	ruleRateAnomaly rule = iota
	ruleRateCeiling
	ruleDenied
	ruleDeniedHigh
	ruleFailedAddress
	ruleTravel
	ruleHijack
	ruleHijackCountries
	ruleNewDevice
	ruleNewCountry
	ruleEnumeration
	ruleEnumerationHigh
	ruleCarryOver
	numRules
)

var ruleDetectors = [numRules]detector{
	ruleRateAnomaly: detRequestRate, ruleRateCeiling: detRequestRate,
	ruleDenied: detDeniedBurst, ruleDeniedHigh: detDeniedBurst, ruleFailedAddress: detDeniedBurst,
	ruleTravel: detImpossibleTravel,
	ruleHijack: detSessionHijack, ruleHijackCountries: detSessionHijack,
	ruleNewDevice: detNewDevice, ruleNewCountry: detNewCountry,
	ruleEnumeration: detEnumeration, ruleEnumerationHigh: detEnumeration,
	ruleCarryOver: detCarriedOver,
}

// refireGap is the least time between two refreshes of one rule's
// contribution on one key: a detector that keeps firing refreshes its
// contribution (and rebuilds its reason) at most this often.
const refireGap = 60

// ruleParam is what a rule contributes.
type ruleParam struct {
	points uint8
	ttl    uint32 // seconds
	on     bool
}

// rules holds every rule's points and lifetime, from the configuration,
// and counts the detections.
type rules struct {
	p     [numRules]ruleParam
	fired [numDetectors]prometheus.Counter // nil entries count nothing
}

func newRules(c *Config) *rules {
	d := &c.Detectors
	var r rules
	set := func(ru rule, enabled *bool, points int, ttl uint32) {
		r.p[ru] = ruleParam{points: uint8(min(max(points, 0), 100)), ttl: ttl, on: on(enabled) && points > 0}
	}
	rr := d.RequestRate
	set(ruleRateAnomaly, rr.Enabled, rr.Points, seconds(rr.TTL))
	set(ruleRateCeiling, rr.Enabled, rr.CeilingPoints, seconds(rr.TTL))
	db := d.DeniedBurst
	set(ruleDenied, db.Enabled, db.Points, seconds(db.TTL))
	set(ruleDeniedHigh, db.Enabled, db.HighPoints, seconds(db.TTL))
	set(ruleFailedAddress, db.Enabled, db.AddressPoints, seconds(db.TTL))
	if !on(db.Addresses) {
		r.p[ruleFailedAddress].on = false
	}
	it := d.ImpossibleTravel
	set(ruleTravel, it.Enabled, it.Points, seconds(it.TTL))
	sh := d.SessionHijack
	set(ruleHijack, sh.Enabled, sh.Points, seconds(sh.TTL))
	set(ruleHijackCountries, sh.Enabled, sh.CountryPoints, seconds(sh.TTL))
	set(ruleNewDevice, d.NewDevice.Enabled, d.NewDevice.Points, seconds(d.NewDevice.TTL))
	set(ruleNewCountry, d.NewCountry.Enabled, d.NewCountry.Points, seconds(d.NewCountry.TTL))
	en := d.Enumeration
	set(ruleEnumeration, en.Enabled, en.Points, seconds(en.TTL))
	set(ruleEnumerationHigh, en.Enabled, en.HighPoints, seconds(en.TTL))
	t := true
	set(ruleCarryOver, &t, 100, seconds(c.Score.CarryOver))
	return &r
}

// due reports whether rule ru may add or refresh its contribution on sc at
// now: it is switched on and has not been refreshed within refireGap.
func (r *rules) due(sc *scoring, ru rule, now stamp) bool {
	if !r.p[ru].on {
		return false
	}
	for i := range sc.contribs {
		if c := &sc.contribs[i]; c.rule == ru {
			return now.since(c.at) >= refireGap
		}
	}
	return true
}

// add records (or refreshes) rule ru's contribution on sc.
func (r *rules) add(sc *scoring, ru rule, now stamp, reason string) {
	p := r.p[ru]
	if !p.on {
		return
	}
	sc.put(contribution{rule: ru, points: p.points, at: now, expires: now.add(p.ttl), reason: reason})
	if c := r.fired[ruleDetectors[ru]]; c != nil {
		c.Inc()
	}
}

// contribution is one detector finding on one key.
type contribution struct {
	// reason is human-readable and starts with the detector's name.
	reason  string
	at      stamp
	expires stamp
	rule    rule
	points  uint8
}

// effective is the contribution's weight at now: full points for the
// first (1 − fade) of its lifetime, then fading linearly to zero at its
// expiry.
func (c *contribution) effective(now stamp, fade float64) float64 {
	if now >= c.expires {
		return 0
	}
	p := float64(c.points)
	life := float64(c.expires - c.at)
	if now <= c.at || fade <= 0 || life <= 0 {
		return p
	}
	left := float64(c.expires - now)
	fadeSpan := life * fade
	if left >= fadeSpan {
		return p
	}
	return p * left / fadeSpan
}

// Levels, ordered.
type level uint8

const (
	levelLow level = iota
	levelMedium
	levelHigh
)

func (l level) String() string {
	switch l {
	case levelMedium:
		return state.RiskMedium
	case levelHigh:
		return state.RiskHigh
	}
	return state.RiskLow
}

func parseLevel(s string) (level, bool) {
	switch s {
	case state.RiskLow:
		return levelLow, true
	case state.RiskMedium:
		return levelMedium, true
	case state.RiskHigh:
		return levelHigh, true
	}
	return levelLow, false
}

// scoring is the risk of one key (subject or session): its live
// contributions and what was last published about it.
type scoring struct {
	contribs []contribution
	pubAt    stamp
	pubGen   uint8 // publications so far (wrapping); matches failures to attempts
	pubLevel level
	pubScore uint8
	active   bool // in Engine.active
}

// put adds a contribution, replacing an earlier one of the same rule.
func (sc *scoring) put(c contribution) {
	for i := range sc.contribs {
		if sc.contribs[i].rule == c.rule {
			sc.contribs[i] = c
			return
		}
	}
	sc.contribs = append(sc.contribs, c)
}

// prune drops expired contributions.
func (sc *scoring) prune(now stamp) {
	if len(sc.contribs) == 0 {
		return
	}
	sc.contribs = slices.DeleteFunc(sc.contribs, func(c contribution) bool { return now >= c.expires })
	if len(sc.contribs) == 0 {
		sc.contribs = nil
	}
}

// score combines the contributions at now: the strongest per detector,
// then 1 − Π(1 − p/100), rounded, 0-100.
func (sc *scoring) score(now stamp, fade float64) int {
	if len(sc.contribs) == 0 {
		return 0
	}
	var best [numDetectors]float64
	for i := range sc.contribs {
		c := &sc.contribs[i]
		if e := c.effective(now, fade); e > best[ruleDetectors[c.rule]] {
			best[ruleDetectors[c.rule]] = e
		}
	}
	keep := 1.0
	for _, p := range best {
		keep *= 1 - p/100
	}
	s := int(math.Round(100 * (1 - keep)))
	return min(max(s, 0), 100)
}

// reasons lists the live contributions' reasons, strongest first.
func (sc *scoring) reasons(now stamp, fade float64) []string {
	type weighted struct {
		w      float64
		reason string
	}
	ws := make([]weighted, 0, len(sc.contribs))
	for i := range sc.contribs {
		c := &sc.contribs[i]
		if e := c.effective(now, fade); e > 0 {
			ws = append(ws, weighted{e, c.reason})
		}
	}
	slices.SortStableFunc(ws, func(a, b weighted) int {
		switch {
		case a.w > b.w:
			return -1
		case a.w < b.w:
			return 1
		}
		return strings.Compare(a.reason, b.reason)
	})
	out := make([]string, 0, min(len(ws), maxReasons))
	for _, w := range ws {
		if len(out) == maxReasons {
			break
		}
		out = append(out, w.reason)
	}
	return out
}

// maxReasons bounds the reasons published with one change (the journal
// accepts 32).
const maxReasons = 16

// levelOf maps a score to a level with the configured thresholds.
func levelOf(score int, s *Score) level {
	switch {
	case score >= s.High:
		return levelHigh
	case score >= s.Medium:
		return levelMedium
	}
	return levelLow
}

// ours reports whether a recorded reason was written by this engine: it
// starts with a detector name and ": ".
func ours(reason string) bool {
	name, _, ok := strings.Cut(reason, ": ")
	return ok && slices.Contains(detectorNames[:], name)
}
