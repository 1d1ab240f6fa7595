package risk

import (
	"fmt"
	"math"
)

// place is where a key was last seen: 16 bytes.
type place struct {
	lat, lon float32
	at       stamp
	radius   uint16 // accuracy radius, km
	country  [2]byte
}

// travelDetector implements impossible_travel.
type travelDetector struct {
	maxKMH float64
	minKM  float64
	r      *rules
}

func newTravelDetector(c *ImpossibleTravel, r *rules) *travelDetector {
	return &travelDetector{maxKMH: c.MaxSpeedKMH, minKM: c.MinDistanceKM, r: r}
}

func (d *travelDetector) enabled() bool { return d.r.p[ruleTravel].on }

// observe compares a located request of a key with the key's previous
// location and remembers the new one.
func (d *travelDetector) observe(st *place, sc *scoring, now stamp, ev *Event, scope string) {
	if !ev.Located {
		return
	}
	lat, lon := float32(ev.Latitude), float32(ev.Longitude)
	radius := uint16(min(max(ev.AccuracyKM, 0), math.MaxUint16))
	country := countryCode(ev.Country)
	if st.at != 0 && (st.lat != lat || st.lon != lon) {
		dist := haversineKM(float64(st.lat), float64(st.lon), float64(lat), float64(lon))
		eff := dist - float64(st.radius) - float64(radius)
		if eff > d.minKM {
			secs := max(float64(now.since(st.at)), 1)
			speed := eff / (secs / 3600)
			if speed > d.maxKMH && d.r.due(sc, ruleTravel, now) {
				d.r.add(sc, ruleTravel, now, fmt.Sprintf("impossible_travel: this %s moved %.0f km (%s → %s) in %s, %.0f km/h (at most %.0f km/h is plausible)",
					scope, dist, placeName(st.country), placeName(country), span(now.since(st.at)), speed, d.maxKMH))
			}
		}
	}
	*st = place{lat: lat, lon: lon, at: now, radius: radius, country: country}
}

// haversineKM is the great-circle distance between two points in km.
func haversineKM(lat1, lon1, lat2, lon2 float64) float64 {
	const earthKM = 6371.0
	rad := math.Pi / 180
	dlat := (lat2 - lat1) * rad
	dlon := (lon2 - lon1) * rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * earthKM * math.Asin(math.Sqrt(min(max(a, 0), 1)))
}

// countryCode keeps an ISO 3166-1 alpha-2 code in two bytes; anything else
// is unknown (zero).
func countryCode(s string) [2]byte {
	if len(s) != 2 || !upper(s[0]) || !upper(s[1]) {
		return [2]byte{}
	}
	return [2]byte{s[0], s[1]}
}

func upper(c byte) bool { return c >= 'A' && c <= 'Z' }

func placeName(c [2]byte) string {
	if c == ([2]byte{}) {
		return "unknown country"
	}
	return string(c[:])
}
