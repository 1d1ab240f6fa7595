package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestForwardAuth(t *testing.T) {
	h := newHarness(t)
	alice := "Bearer " + h.token("alice", []string{"member"}, map[string]any{"sid": "s-1"})
	nobody := "Bearer " + h.token("nobody", nil, nil)

	tests := []struct {
		name        string
		trusted     bool
		header      http.Header
		want        int
		wantHeaders map[string]string // "" means absent
		wantAuth    string
	}{
		{
			name: "NGINX asks about an allowed request and gets the identity", trusted: true,
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/todos/1?full=1"}, "Authorization": {alice}},
			want:   200, wantHeaders: map[string]string{"X-Vigil-Subject": "alice", "X-Vigil-Roles": "member", "X-Vigil-Session": "s-1"},
		},
		{
			name: "Traefik asks about a delete that needs step-up", trusted: true,
			header: http.Header{"X-Forwarded-Method": {"DELETE"}, "X-Forwarded-Uri": {"/todos/1"}, "X-Forwarded-Host": {"api.example"},
				"X-Forwarded-Proto": {"https"}, "Authorization": {alice}},
			want: 401, wantAuth: `error="insufficient_user_authentication"`, wantHeaders: map[string]string{"X-Vigil-Subject": ""},
		},
		{
			name: "a request without a token is challenged", trusted: true,
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/todos/1"}},
			want:   401, wantAuth: `Bearer realm="vigil"`,
		},
		{
			name: "a user without permission is denied", trusted: true,
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/todos/1"}, "Authorization": {nobody}},
			want:   403, wantHeaders: map[string]string{"X-Vigil-Subject": ""},
		},
		{
			name: "an anonymous route is allowed without identity headers", trusted: true,
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/healthz"}},
			want:   200, wantHeaders: map[string]string{"X-Vigil-Subject": ""},
		},
		{
			name: "the client address comes from X-Real-IP when X-Forwarded-For is absent", trusted: true,
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/todos/office"}, "X-Real-Ip": {"203.0.113.5"}, "Authorization": {alice}},
			want:   200,
		},
		{
			name: "the client address comes from X-Forwarded-For", trusted: true,
			header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/todos/office"}, "X-Forwarded-For": {"198.51.100.4"}, "Authorization": {alice}},
			want:   403,
		},
		{
			name:   "an untrusted peer is refused even with a valid token",
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/todos/1"}, "Authorization": {alice}},
			want:   403, wantHeaders: map[string]string{"X-Vigil-Subject": ""},
		},
		{
			name: "a request without the original URI is a bad request", trusted: true,
			header: http.Header{"X-Original-Method": {"GET"}, "Authorization": {alice}},
			want:   400,
		},
		{
			name: "disagreeing NGINX and Traefik headers are a bad request", trusted: true,
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/todos/1"}, "X-Forwarded-Uri": {"/admin"}, "Authorization": {alice}},
			want:   400,
		},
		{
			name: "a traversal in the original URI is a bad request", trusted: true,
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/todos/%2e%2e/admin"}, "Authorization": {alice}},
			want:   400,
		},
		{
			name: "an unrouted original request is denied", trusted: true,
			header: http.Header{"X-Original-Method": {"PATCH"}, "X-Original-Uri": {"/todos/1"}, "Authorization": {alice}},
			want:   403,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.request(tt.trusted, "GET", "/.vigil/auth", tt.header)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			for k, v := range tt.wantHeaders {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, tt.wantAuth) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, tt.wantAuth)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("no X-Request-Id")
			}
			if tt.want != 200 {
				problemBody(t, resp, body)
			}
		})
	}
}

func TestForwardAuthSendsEveryIdentityHeader(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		header http.Header
		want   map[string]string
	}{
		{
			name:   "a token without a session id gets an empty session header",
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/todos/1"}, "Authorization": {"Bearer " + h.token("alice", []string{"member"}, nil)}},
			want:   map[string]string{"X-Vigil-Subject": "alice", "X-Vigil-Roles": "member", "X-Vigil-Session": ""},
		},
		{
			name:   "an anonymous request gets all three headers empty",
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/healthz"}},
			want:   map[string]string{"X-Vigil-Subject": "", "X-Vigil-Roles": "", "X-Vigil-Session": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.request(true, "GET", "/.vigil/auth", tt.header)
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d, want 200: %s", resp.StatusCode, body)
			}
			for k, v := range tt.want {
				if got, ok := resp.Header[k]; !ok || len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q (present %v), want exactly %q", k, got, ok, v)
				}
			}
		})
	}
}

func TestForwardAuthHandlerOnItsOwnListener(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Options) {
		f := false
		c.ForwardAuth.Enabled = &f
	})
	srv := httptest.NewServer(h.gw.ForwardAuthHandler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/anything", nil)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-Uri", "/todos/1")
	req.Header.Set("Authorization", "Bearer "+h.token("alice", []string{"member"}, nil))
	resp, err := client(true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Vigil-Subject") != "alice" {
		t.Fatalf("status %d, subject %q; want 200 and alice", resp.StatusCode, resp.Header.Get("X-Vigil-Subject"))
	}

	t.Run("with forward-auth disabled the gateway path is proxied like any other", func(t *testing.T) {
		resp, body := h.request(true, "GET", "/.vigil/auth", req.Header)
		if resp.StatusCode != 403 || resp.Header.Get("X-Vigil-Subject") != "" {
			t.Fatalf("status %d: %s; want the route table's answer (no route: 403)", resp.StatusCode, body)
		}
	})
}
