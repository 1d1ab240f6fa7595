package gateway

import (
	"fmt"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Geo is where a client address is located. Empty fields are unknown.
// Only Country and City reach policies (context.geo); the coordinates feed
// Options.Observe (impossible-travel detection).
type Geo struct {
	// Country is the ISO 3166-1 alpha-2 code ("DE").
	Country string
	// City is the English city name ("Berlin").
	City string
	// Latitude and Longitude locate the address in degrees (WGS 84); both
	// are zero when the database has no location (see Located).
	Latitude, Longitude float64
	// AccuracyRadius is the database's uncertainty around the location, in
	// kilometres (0 when unknown).
	AccuracyRadius uint16
}

// Located reports whether g carries coordinates. A record exactly at 0°N
// 0°E (in the Gulf of Guinea) counts as unlocated.
func (g Geo) Located() bool { return g.Latitude != 0 || g.Longitude != 0 }

// geoDB resolves addresses with a MaxMind DB in the GeoIP2/GeoLite2 City
// or Country layout.
type geoDB struct {
	r *maxminddb.Reader
}

// mmdbRecord is the part of a GeoIP2 City/Country record the gateway reads.
type mmdbRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	City struct {
		Names struct {
			En string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"city"`
	Location struct {
		Latitude       float64 `maxminddb:"latitude"`
		Longitude      float64 `maxminddb:"longitude"`
		AccuracyRadius uint16  `maxminddb:"accuracy_radius"`
	} `maxminddb:"location"`
}

func openGeo(path string) (*geoDB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geoip database %q: %w", path, err)
	}
	return &geoDB{r: r}, nil
}

// lookup returns the location of a, or the zero Geo when the database has
// no entry or the record cannot be decoded (a lookup never fails a request).
func (g *geoDB) lookup(a netip.Addr) Geo {
	if g == nil || !a.IsValid() {
		return Geo{}
	}
	var rec mmdbRecord
	if err := g.r.Lookup(a.Unmap()).Decode(&rec); err != nil {
		return Geo{}
	}
	geo := Geo{Country: clip(rec.Country.ISOCode, 8), City: clip(rec.City.Names.En, 128)}
	if loc := rec.Location; validCoordinates(loc.Latitude, loc.Longitude) {
		geo.Latitude, geo.Longitude, geo.AccuracyRadius = loc.Latitude, loc.Longitude, loc.AccuracyRadius
	}
	return geo
}

func (g *geoDB) close() error {
	if g == nil {
		return nil
	}
	return g.r.Close()
}

// validCoordinates rejects out-of-range (or NaN) coordinates from a
// database file.
func validCoordinates(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180
}

// clip bounds a string taken from a database file.
func clip(s string, n int) string {
	if len(s) > n {
		return ""
	}
	return s
}
