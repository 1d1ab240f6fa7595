package apiauth

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRequire(t *testing.T) {
	keys := NewKeys("key-one-0123456789", "", "key-two-0123456789")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	cases := []struct {
		name     string
		keys     *Keys
		optional bool
		header   map[string]string
		want     int
	}{
		{"a bearer key is accepted", keys, false, map[string]string{"Authorization": "Bearer key-one-0123456789"}, 204},
		{"the bearer scheme is case-insensitive", keys, false, map[string]string{"Authorization": "bearer key-two-0123456789"}, 204},
		{"a raw Authorization key is accepted (AuthZEN interop)", keys, false, map[string]string{"Authorization": "key-two-0123456789"}, 204},
		{"X-API-Key is accepted", keys, false, map[string]string{"X-API-Key": "key-one-0123456789"}, 204},
		{"a wrong key is refused", keys, false, map[string]string{"Authorization": "Bearer nope"}, 401},
		{"no key is refused", keys, false, nil, 401},
		{"an empty key never matches the ignored empty entry", keys, false, map[string]string{"Authorization": "Bearer "}, 401},
		{"optional auth without keys lets callers through", NewKeys(), true, nil, 204},
		{"required auth without keys refuses everyone", NewKeys(), false, map[string]string{"Authorization": "Bearer x"}, 401},
		{"optional auth with keys still checks them", keys, true, nil, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			Require(tc.keys, "test", tc.optional, ok).ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") != `Bearer realm="test"` {
				t.Fatalf("missing challenge: %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}
