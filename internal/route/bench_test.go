package route

import (
	"fmt"
	"testing"
)

// benchRoutes is a 50-route REST API: ten resources with list, create,
// read, update and a nested item route each.
func benchRoutes() []Route {
	var routes []Route
	for _, res := range []string{"todos", "users", "orgs", "projects", "issues", "comments", "teams", "files", "invoices", "reports"} {
		routes = append(routes,
			Route{Method: Methods{"GET"}, Path: "/api/" + res},
			Route{Method: Methods{"POST"}, Path: "/api/" + res},
			Route{Method: Methods{"GET"}, Path: "/api/" + res + "/{id}", Resource: Resource{Type: "Item", ID: "{id}"}},
			Route{Method: Methods{"PUT", "DELETE"}, Path: "/api/" + res + "/{id}", Resource: Resource{Type: "Item"}},
			Route{Method: Methods{"GET"}, Path: "/api/" + res + "/{id}/items/{item}", Resource: Resource{Type: "Sub", ID: "{id}/{item}"}},
		)
	}
	if len(routes) != 50 {
		panic(fmt.Sprintf("bench wants 50 routes, has %d", len(routes)))
	}
	return routes
}

func BenchmarkMatch(b *testing.B) {
	tbl := mustCompile(b, benchRoutes())
	cases := []struct{ name, method, path string }{
		{"static", "GET", "/api/reports"},
		{"param", "GET", "/api/reports/8f14e45f-ceea-467f-a0e6-3d0b1c5f9a1e"},
		{"nested", "GET", "/api/invoices/42/items/7"},
		{"encoded", "GET", "/api/files/report%20q3.pdf"},
		{"head_fallback", "HEAD", "/api/users/42"},
		{"no_route", "GET", "/api/unknown/1"},
		{"rejected", "GET", "/api/todos/%2e%2e/admin"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = tbl.Match(c.method, c.path)
			}
		})
	}
}
