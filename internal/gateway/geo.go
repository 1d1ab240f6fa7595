package gateway

import (
	"fmt"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Geo is where a client address is located. Empty fields are unknown.
type Geo struct {
	// Country is the ISO 3166-1 alpha-2 code ("DE").
	Country string
	// City is the English city name ("Berlin").
	City string
}

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
	return Geo{Country: clip(rec.Country.ISOCode, 8), City: clip(rec.City.Names.En, 128)}
}

func (g *geoDB) close() error {
	if g == nil {
		return nil
	}
	return g.r.Close()
}

// clip bounds a string taken from a database file.
func clip(s string, n int) string {
	if len(s) > n {
		return ""
	}
	return s
}
