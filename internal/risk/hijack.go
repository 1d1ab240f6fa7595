package risk

import (
	"fmt"
	"hash/maphash"
	"net/netip"
)

// fingerprints are the networks and agents (user agents, device ids) a
// session or token has been used from, as 32-bit hashes in small rings,
// and the last country it was seen in: 48 bytes.
type fingerprints struct {
	nets      [4]uint32
	agents    [6]uint32
	countryAt stamp
	country   [2]byte
	nNet      uint8 // next ring slot
	nAgent    uint8
	seen      bool
}

// hijackDetector implements session_hijack.
type hijackDetector struct {
	v4, v6 int
	window uint32
	seed   maphash.Seed
	r      *rules
}

func newHijackDetector(c *SessionHijack, r *rules, seed maphash.Seed) *hijackDetector {
	return &hijackDetector{v4: c.IPv4Prefix, v6: c.IPv6Prefix, window: seconds(c.ConcurrentWindow), seed: seed, r: r}
}

func (d *hijackDetector) enabled() bool { return d.r.p[ruleHijack].on || d.r.p[ruleHijackCountries].on }

// network hashes the address's network (prefix per configuration); 0 for
// no address.
func (d *hijackDetector) network(ip netip.Addr) (uint32, netip.Prefix) {
	if !ip.IsValid() {
		return 0, netip.Prefix{}
	}
	ip = ip.Unmap()
	bits := d.v6
	if ip.Is4() {
		bits = d.v4
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return 0, netip.Prefix{}
	}
	b := p.Addr().As16()
	return nonzero(uint32(maphash.Bytes(d.seed, b[:]))), p
}

// agent hashes a user agent or device id with a kind tag; 0 for "".
func (d *hijackDetector) agent(kind byte, s string) uint32 {
	if s == "" {
		return 0
	}
	return nonzero(uint32(maphash.String(d.seed, s)) ^ uint32(kind)*0x9e3779b1)
}

// nonzero keeps 0 free to mean "no value".
func nonzero(h uint32) uint32 {
	if h == 0 {
		return 1
	}
	return h
}

// observe checks one request of a session (or of a token without a
// session; scope names which) against what it was used from before, then
// remembers the request's network, agents and country.
func (d *hijackDetector) observe(st *fingerprints, sc *scoring, now stamp, ev *Event, scope string) {
	netH, prefix := d.network(ev.IP)
	uaH := d.agent('u', ev.UserAgent)
	devH := d.agent('d', ev.DeviceID)
	if st.seen {
		newNet := netH != 0 && !has(st.nets[:], netH)
		newUA := uaH != 0 && !has(st.agents[:], uaH)
		newDev := devH != 0 && !has(st.agents[:], devH)
		if newNet && (newUA || newDev) && d.r.due(sc, ruleHijack, now) {
			what := "user agent"
			switch {
			case newUA && newDev:
				what = "user agent and device"
			case newDev:
				what = "device"
			}
			d.r.add(sc, ruleHijack, now, fmt.Sprintf("session_hijack: this %s was presented from a new network (%s) with a new %s at once", scope, prefix, what))
		}
	}
	if c := countryCode(ev.Country); c != ([2]byte{}) {
		if st.country != ([2]byte{}) && st.country != c && now.since(st.countryAt) <= d.window && d.r.due(sc, ruleHijackCountries, now) {
			d.r.add(sc, ruleHijackCountries, now, fmt.Sprintf("session_hijack: this %s was used from %s and %s within %s",
				scope, placeName(st.country), placeName(c), span(now.since(st.countryAt))))
		}
		st.country, st.countryAt = c, now
	}
	st.seen = true
	if netH != 0 && !has(st.nets[:], netH) {
		st.nets[st.nNet%uint8(len(st.nets))] = netH
		st.nNet++
	}
	for _, h := range [2]uint32{uaH, devH} {
		if h != 0 && !has(st.agents[:], h) {
			st.agents[st.nAgent%uint8(len(st.agents))] = h
			st.nAgent++
		}
	}
}

func has(ring []uint32, h uint32) bool {
	for _, v := range ring {
		if v == h {
			return true
		}
	}
	return false
}
