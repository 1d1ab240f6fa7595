package risk

import (
	"fmt"
	"math"
	"net/netip"
)

// slidingCount approximates the number of events in the last window from
// two fixed windows (current and previous), weighting the previous one by
// how much of it still overlaps. Eight bytes per key.
type slidingCount struct {
	start     stamp
	cur, prev uint16
}

func (w *slidingCount) roll(now stamp, win uint32) {
	if w.start == 0 {
		w.start = now
		return
	}
	el := now.since(w.start)
	if el < win {
		return
	}
	k := el / win
	if k == 1 {
		w.prev = w.cur
	} else {
		w.prev = 0
	}
	w.cur = 0
	w.start = w.start.add(k * win)
}

// add counts one event at now and returns the estimate.
func (w *slidingCount) add(now stamp, win uint32) int {
	w.roll(now, win)
	if w.cur < math.MaxUint16 {
		w.cur++
	}
	return w.estimate(now, win)
}

// estimate is the approximate count over the window ending at now.
func (w *slidingCount) estimate(now stamp, win uint32) int {
	if w.start == 0 {
		return 0
	}
	el := now.since(w.start)
	switch {
	case el >= 2*win:
		return 0
	case el >= win:
		// The current window has become the previous one.
		return int(float64(w.cur) * float64(2*win-el) / float64(win))
	}
	return int(w.cur) + int(float64(w.prev)*float64(win-el)/float64(win))
}

// deniedDetector implements denied_burst.
type deniedDetector struct {
	win      uint32
	low      int
	high     int
	addrLow  int
	r        *rules
	tracksIP bool
}

func newDeniedDetector(c *DeniedBurst, r *rules) *deniedDetector {
	return &deniedDetector{
		win: seconds(c.Window), low: c.Threshold, high: c.HighThreshold, addrLow: c.AddressThreshold, r: r,
		tracksIP: r.p[ruleFailedAddress].on,
	}
}

func (d *deniedDetector) enabled() bool { return d.r.p[ruleDenied].on || d.r.p[ruleDeniedHigh].on }

// failure reports whether an outcome counts against the client address:
// only invalid tokens — denials of authenticated users are their own
// (observeSubject), and counting them for the address too would double
// the same evidence.
func failure(o Outcome) bool { return o == Unauthenticated }

// observeSubject counts a subject's refused request.
func (d *deniedDetector) observeSubject(st *slidingCount, sc *scoring, now stamp, o Outcome) {
	if !o.refused() {
		return
	}
	n := st.add(now, d.win)
	ru := ruleDenied
	switch {
	case n >= d.high && d.r.p[ruleDeniedHigh].on:
		ru = ruleDeniedHigh
	case n < d.low:
		return
	}
	if d.r.due(sc, ru, now) {
		d.r.add(sc, ru, now, fmt.Sprintf("denied_burst: %d denied requests within %s (probing)", n, span(d.win)))
	}
}

// observeAddress marks a subject that makes a request from an address
// that recently sent failures requests with invalid tokens.
func (d *deniedDetector) observeAddress(sc *scoring, now stamp, ip netip.Addr, failures int) {
	if failures < d.addrLow || !d.r.due(sc, ruleFailedAddress, now) {
		return
	}
	d.r.add(sc, ruleFailedAddress, now, fmt.Sprintf("denied_burst: request from %s after %d requests with invalid tokens from that address within %s (credential stuffing?)",
		ip, failures, span(d.win)))
}
