package risk

import (
	"fmt"
	"math"
	"time"
)

// rateState counts one key's requests in fixed windows and keeps an
// exponentially weighted moving average of past windows: the key's own
// baseline.
type rateState struct {
	start   stamp // current window's start; 0 before the first request
	count   uint32
	ewma    float32
	windows uint16 // windows since first seen (saturating)
	fired   uint8  // rules fired in the current window
}

const (
	firedAnomaly = 1 << iota
	firedCeiling
)

// rateDetector implements request_rate.
type rateDetector struct {
	win     uint32
	alpha   float64
	warmup  int
	factor  float64
	min     int
	subject int // ceilings; 0 = none
	session int
	r       *rules
}

func newRateDetector(c *RequestRate, r *rules) *rateDetector {
	return &rateDetector{
		win: seconds(c.Window), alpha: c.Alpha, warmup: c.WarmupWindows, factor: c.Factor,
		min: c.MinRequests, subject: c.SubjectCeiling, session: c.SessionCeiling, r: r,
	}
}

func (d *rateDetector) enabled() bool { return d.r.p[ruleRateAnomaly].on || d.r.p[ruleRateCeiling].on }

// observe counts one request of a key (scope "user" or "session") at now.
func (d *rateDetector) observe(st *rateState, sc *scoring, now stamp, ceiling int, scope string) {
	if st.start == 0 {
		st.start = now
	} else if now.since(st.start) >= d.win {
		d.roll(st, now)
	}
	if st.count < math.MaxUint32 {
		st.count++
	}
	n := int(st.count)
	if ceiling > 0 && n > ceiling && st.fired&firedCeiling == 0 && d.r.due(sc, ruleRateCeiling, now) {
		st.fired |= firedCeiling
		d.r.add(sc, ruleRateCeiling, now, fmt.Sprintf("request_rate: %d requests by this %s within %s, above the ceiling of %d",
			n, scope, span(d.win), ceiling))
	}
	if int(st.windows) < d.warmup || st.fired&firedAnomaly != 0 {
		return
	}
	base := float64(st.ewma)
	if limit := math.Max(float64(d.min), d.factor*base); float64(n) > limit && d.r.due(sc, ruleRateAnomaly, now) {
		st.fired |= firedAnomaly
		d.r.add(sc, ruleRateAnomaly, now, fmt.Sprintf("request_rate: %d requests by this %s within %s, %s its usual %.1f",
			n, scope, span(d.win), times(float64(n), base), base))
	}
}

// roll closes the current window (and any empty ones after it). A window
// in which an anomaly fired does not teach the baseline, so that an
// attacker cannot raise it by bursting.
func (d *rateDetector) roll(st *rateState, now stamp) {
	k := now.since(st.start) / d.win
	if st.fired&firedAnomaly == 0 {
		st.ewma = float32(d.alpha*float64(st.count) + (1-d.alpha)*float64(st.ewma))
	}
	if k > 1 {
		st.ewma *= float32(math.Pow(1-d.alpha, float64(min(k-1, 1000))))
	}
	st.windows = uint16(min(uint32(st.windows)+k, math.MaxUint16))
	st.start = st.start.add(k * d.win)
	st.count, st.fired = 0, 0
}

// span renders a number of seconds as a duration ("1m0s").
func span(secs uint32) string { return (time.Duration(secs) * time.Second).String() }

// times renders a ratio for a reason ("12×"); "far above" without a
// baseline.
func times(n, base float64) string {
	if base < 0.05 {
		return "far above"
	}
	return fmt.Sprintf("%.0f× ", n/base) + "above"
}
