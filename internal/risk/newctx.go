package risk

import (
	"fmt"
	"hash/maphash"
)

// known are the devices and countries a subject has used: the last 8 of
// each (device ids as 32-bit hashes). 50 bytes.
type known struct {
	devices   [8]uint32
	countries [8][2]byte
	nDev      uint8
	nCountry  uint8
}

// newContextDetector implements new_device and new_country.
type newContextDetector struct {
	learnDevice  uint32
	learnCountry uint32
	seed         maphash.Seed
	r            *rules
}

func newNewContextDetector(dev, country *NewContext, r *rules, seed maphash.Seed) *newContextDetector {
	return &newContextDetector{learnDevice: uint32(dev.LearnFor.Seconds()), learnCountry: uint32(country.LearnFor.Seconds()), seed: seed, r: r}
}

func (d *newContextDetector) enabled() bool {
	return d.r.p[ruleNewDevice].on || d.r.p[ruleNewCountry].on
}

// observe checks a subject's request against its known devices and
// countries. While the subject is younger than the learning period the
// new values are only remembered.
func (d *newContextDetector) observe(st *known, sc *scoring, now, firstSeen stamp, ev *Event) {
	age := now.since(firstSeen)
	if ev.DeviceID != "" && d.r.p[ruleNewDevice].on {
		h := nonzero(uint32(maphash.String(d.seed, ev.DeviceID)))
		if !has(st.devices[:], h) {
			if age >= d.learnDevice && d.r.due(sc, ruleNewDevice, now) {
				d.r.add(sc, ruleNewDevice, now, fmt.Sprintf("new_device: first request from device %s", quoteShort(ev.DeviceID)))
			}
			st.devices[st.nDev%uint8(len(st.devices))] = h
			st.nDev++
		}
	}
	if c := countryCode(ev.Country); c != ([2]byte{}) && d.r.p[ruleNewCountry].on {
		if !hasCountry(st.countries[:], c) {
			if age >= d.learnCountry && d.r.due(sc, ruleNewCountry, now) {
				d.r.add(sc, ruleNewCountry, now, fmt.Sprintf("new_country: first request from %s (known: %s)", placeName(c), countryList(st.countries[:])))
			}
			st.countries[st.nCountry%uint8(len(st.countries))] = c
			st.nCountry++
		}
	}
}

func hasCountry(cs [][2]byte, c [2]byte) bool {
	for _, v := range cs {
		if v == c {
			return true
		}
	}
	return false
}

func countryList(cs [][2]byte) string {
	var b []byte
	for _, c := range cs {
		if c == ([2]byte{}) {
			continue
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, c[:]...)
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}
