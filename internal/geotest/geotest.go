// Package geotest writes small MaxMind-format (.mmdb) GeoIP databases for
// tests, in the GeoIP2-City layout the gateway reads.
package geotest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// City is a City record: country ISO code and English city name.
func City(iso, name string) mmdbtype.Map {
	return mmdbtype.Map{
		"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso)},
		"city":    mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(name)}},
	}
}

// Located adds a location (coordinates and accuracy radius in km) to rec.
func Located(rec mmdbtype.Map, lat, lon float64, radius uint16) mmdbtype.Map {
	rec["location"] = mmdbtype.Map{
		"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon),
		"accuracy_radius": mmdbtype.Uint16(radius),
	}
	return rec
}

// WriteCityDB writes records (CIDR → record) into a GeoIP2-City-shaped
// database in a temporary directory and returns its path. Reserved
// networks (documentation prefixes) are allowed.
func WriteCityDB(t testing.TB, records map[string]mmdbtype.Map) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range records {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "city.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
