package risk

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
)

// maxEnumeration is the largest threshold the estimator supports: linear
// counting over 256 bits stays within a few per cent up to about this
// many distinct values.
const maxEnumeration = 1000

// enumState estimates the distinct resources a subject touched in the
// current window with linear counting (a 256-bit bitmap: 40 bytes, no
// allocation, a few per cent error).
type enumState struct {
	start stamp
	bits  [4]uint64
	fired uint8
}

// ones counts the set bits.
func (st *enumState) ones() int {
	n := 0
	for _, w := range st.bits {
		n += bits.OnesCount64(w)
	}
	return n
}

// distinct estimates the number of distinct values added this window.
func (st *enumState) distinct() int { return estimate(st.ones()) }

// enumDetector implements enumeration.
type enumDetector struct {
	win       uint32
	low, high int
	// lowBits and highBits are the set bits at which the estimate reaches
	// the thresholds: comparing popcounts spares a logarithm per request.
	lowBits, highBits int
	seed              maphash.Seed
	r                 *rules
}

func newEnumDetector(c *Enumeration, r *rules, seed maphash.Seed) *enumDetector {
	d := &enumDetector{win: seconds(c.Window), low: c.Threshold, high: c.HighThreshold, seed: seed, r: r}
	d.lowBits, d.highBits = bitsFor(d.low), bitsFor(d.high)
	return d
}

// bitsFor is the fewest set bits whose estimate is at least n.
func bitsFor(n int) int {
	for ones := 0; ones < 256; ones++ {
		if estimate(ones) >= n {
			return ones
		}
	}
	return 256
}

// estimate is the linear-counting estimate for a number of set bits.
func estimate(ones int) int {
	const m = 256
	zeros := m - ones
	if zeros <= 0 {
		return maxEnumeration
	}
	n := -m * math.Log(float64(zeros)/m)
	return min(int(math.Round(n)), maxEnumeration)
}

func (d *enumDetector) enabled() bool {
	return d.r.p[ruleEnumeration].on || d.r.p[ruleEnumerationHigh].on
}

// observe adds the request's resource to the subject's window.
func (d *enumDetector) observe(st *enumState, sc *scoring, now stamp, ev *Event) {
	if ev.ResourceID == "" {
		return
	}
	switch {
	case st.start == 0:
		st.start = now
	case now.since(st.start) >= d.win:
		st.start = st.start.add(now.since(st.start) / d.win * d.win)
		st.bits, st.fired = [4]uint64{}, 0
	}
	h := maphash.String(d.seed, ev.ResourceType) ^ bits.RotateLeft64(maphash.String(d.seed, ev.ResourceID), 17)
	i := h & 255
	w, b := i/64, uint64(1)<<(i%64)
	if st.bits[w]&b != 0 {
		return // estimate unchanged
	}
	st.bits[w] |= b
	ones := st.ones()
	ru, flag := ruleEnumeration, uint8(firedAnomaly)
	switch {
	case ones >= d.highBits && d.r.p[ruleEnumerationHigh].on:
		ru, flag = ruleEnumerationHigh, firedCeiling
	case ones < d.lowBits:
		return
	}
	if st.fired&flag != 0 || !d.r.due(sc, ru, now) {
		return
	}
	st.fired |= flag
	d.r.add(sc, ru, now, fmt.Sprintf("enumeration: about %d distinct resources within %s (latest %s)",
		estimate(ones), span(d.win), quoteShort(ev.ResourceType+"::"+ev.ResourceID)))
}
