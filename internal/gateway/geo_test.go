package gateway

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/vigil-authz/vigil/internal/geotest"
)

// writeTestGeoDB builds a small GeoIP2-City-shaped database: 81.2.69.0/24
// is London, GB; 2001:db8::/32 (documentation prefix, inserted as a
// reserved network) is Berlin, DE, with coordinates; 203.0.113.0/24 has a
// location out of range.
func writeTestGeoDB(t testing.TB) string {
	t.Helper()
	return geotest.WriteCityDB(t, map[string]mmdbtype.Map{
		"81.2.69.0/24":    geotest.Located(geotest.City("GB", "London"), 51.5142, -0.0931, 10),
		"2001:db8::/32":   geotest.Located(geotest.City("DE", "Berlin"), 52.52, 13.405, 20),
		"203.0.113.0/24":  geotest.Located(geotest.City("NL", "Nowhere"), 91, 200, 5),
		"192.0.2.0/24":    {"country": mmdbtype.Map{"iso_code": mmdbtype.String("FR")}},
		"198.51.100.0/24": {"country": mmdbtype.String("not a record")},
	})
}

func TestGeoLookup(t *testing.T) {
	db, err := openGeo(writeTestGeoDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	london := Geo{Country: "GB", City: "London", Latitude: 51.5142, Longitude: -0.0931, AccuracyRadius: 10}
	tests := []struct {
		name string
		addr string
		want Geo
	}{
		{name: "an IPv4 address resolves to country, city and location", addr: "81.2.69.142", want: london},
		{name: "an IPv4-mapped IPv6 address resolves like IPv4", addr: "::ffff:81.2.69.142", want: london},
		{name: "an IPv6 address resolves", addr: "2001:db8::1", want: Geo{Country: "DE", City: "Berlin", Latitude: 52.52, Longitude: 13.405, AccuracyRadius: 20}},
		{name: "a location out of range is dropped", addr: "203.0.113.9", want: Geo{Country: "NL", City: "Nowhere"}},
		{name: "a record without a city has only a country", addr: "192.0.2.1", want: Geo{Country: "FR"}},
		{name: "a record of the wrong shape is unknown", addr: "198.51.100.1", want: Geo{}},
		{name: "an address not in the database is unknown", addr: "8.8.8.8", want: Geo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := db.lookup(netip.MustParseAddr(tt.addr))
			if got != tt.want {
				t.Errorf("lookup(%s) = %+v, want %+v", tt.addr, got, tt.want)
			}
			if got.Located() != (tt.want.Latitude != 0) {
				t.Errorf("lookup(%s).Located() = %v", tt.addr, got.Located())
			}
		})
	}
	t.Run("a missing database is unknown everywhere", func(t *testing.T) {
		var none *geoDB
		if got := none.lookup(netip.MustParseAddr("81.2.69.142")); got != (Geo{}) {
			t.Errorf("lookup without database = %+v", got)
		}
	})
}

func TestGeoContextReachesPolicies(t *testing.T) {
	path := writeTestGeoDB(t)
	h := newHarness(t, func(c *Config, _ *Options) { c.GeoIP = path })
	alice := h.token("alice", []string{"member"}, nil)
	for _, tt := range []struct {
		name string
		xff  string
		want int
	}{
		{name: "a client in London is denied by the no-london policy", xff: "81.2.69.142", want: 403},
		{name: "a client in Berlin is allowed", xff: "2001:db8::7", want: 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hdr := bearerHeader(alice)
			hdr.Set("X-Forwarded-For", tt.xff)
			resp, body := h.request(true, "GET", "/todos/1", hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
		})
	}
	t.Run("an unreadable database fails New", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.mmdb")
		if err := os.WriteFile(bad, []byte("not a database"), 0o600); err != nil {
			t.Fatal(err)
		}
		o := Options{Config: h.gw.Config(), Views: h.gw.views, Auth: h.gw.auth, Router: h.gw.router}
		o.Config.GeoIP = bad
		if _, err := New(o); err == nil {
			t.Fatal("New accepted a broken GeoIP database")
		}
	})
}
