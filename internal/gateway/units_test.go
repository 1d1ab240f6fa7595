package gateway

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/route"
)

func TestClientAddr(t *testing.T) {
	ps, err := newProxySet([]string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{name: "an untrusted peer is the client whatever it claims", peer: "203.0.113.1", xff: []string{"1.2.3.4"}, want: "203.0.113.1"},
		{name: "a trusted peer without X-Forwarded-For is the client", peer: "10.1.1.1", want: "10.1.1.1"},
		{name: "a trusted peer forwards its client", peer: "10.1.1.1", xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
		{name: "the rightmost untrusted address wins over spoofed ones on the left", peer: "10.1.1.1", xff: []string{"6.6.6.6, 198.51.100.9, 10.2.2.2"}, want: "198.51.100.9"},
		{name: "several header lines are one list", peer: "10.1.1.1", xff: []string{"6.6.6.6", "198.51.100.9", "192.0.2.1"}, want: "198.51.100.9"},
		{name: "an all-trusted chain yields its leftmost address", peer: "10.1.1.1", xff: []string{"10.3.3.3, 10.2.2.2"}, want: "10.3.3.3"},
		{name: "garbage stops the walk at the last good address", peer: "10.1.1.1", xff: []string{"198.51.100.9, garbage, 10.2.2.2"}, want: "10.2.2.2"},
		{name: "ports and brackets are accepted", peer: "10.1.1.1", xff: []string{"[2001:db9::1]:443"}, want: "2001:db9::1"},
		{name: "bracketed IPv6 without a port is accepted", peer: "10.1.1.1", xff: []string{"[2001:db9::2]"}, want: "2001:db9::2"},
		{name: "an IPv4-mapped peer is matched as IPv4", peer: "::ffff:10.1.1.1", xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
		{name: "empty items are skipped", peer: "10.1.1.1", xff: []string{" , 198.51.100.9 ,, "}, want: "198.51.100.9"},
		{name: "a trusted IPv6 peer forwards its client", peer: "2001:db8::5", xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ps.clientAddr(a(tt.peer).Unmap(), tt.xff); got != a(tt.want) {
				t.Errorf("clientAddr = %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("a chain longer than the hop limit is cut", func(t *testing.T) {
		long := strings.Repeat("10.9.9.9, ", 100) + "10.8.8.8"
		if got := ps.clientAddr(a("10.1.1.1"), []string{"198.51.100.1, " + long}); !ps.contains(got) {
			t.Errorf("clientAddr = %s; want the walk to stop inside the trusted chain", got)
		}
	})
}

func TestPeerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5555":         "127.0.0.1",
		"[::1]:5555":             "::1",
		"[::ffff:10.0.0.1]:80":   "10.0.0.1",
		"192.0.2.4":              "192.0.2.4",
		"@":                      "invalid IP",
		"[fe80::1%eth0]:80":      "fe80::1%eth0",
		"pipe":                   "invalid IP",
		"[2001:db8::1]:notaport": "2001:db8::1",
	} {
		if got := peerAddr(in).String(); got != want {
			t.Errorf("peerAddr(%q) = %s, want %s", in, got, want)
		}
	}
}

func validConfig() Config {
	return Config{Upstreams: []Upstream{{Name: "api", URL: "http://127.0.0.1:9000"}}}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{name: "a minimal configuration is valid", mutate: func(*Config) {}},
		{name: "upstreams are required unless forward-auth is on", mutate: func(c *Config) { c.Upstreams = nil; off := false; c.ForwardAuth.Enabled = &off }, want: "upstreams: at least one"},
		{name: "an upstream URL must be http or https", mutate: func(c *Config) { c.Upstreams[0].URL = "ftp://x" }, want: "upstreams[0].url"},
		{name: "an upstream URL must not carry credentials", mutate: func(c *Config) { c.Upstreams[0].URL = "http://u:p@x" }, want: "upstreams[0].url"},
		{name: "upstream names are unique", mutate: func(c *Config) { c.Upstreams = append(c.Upstreams, c.Upstreams[0]) }, want: "upstreams[1].name"},
		{name: "upstream TLS needs an https URL", mutate: func(c *Config) { c.Upstreams[0].TLS.CA = "ca.pem" }, want: "upstreams[0].tls"},
		{name: "a client certificate needs its key", mutate: func(c *Config) {
			c.Upstreams[0].URL = "https://x"
			c.Upstreams[0].TLS.Cert = "c.pem"
		}, want: "upstreams[0].tls: cert and key"},
		{name: "trusted proxies must parse", mutate: func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, want: "trusted_proxies[0]"},
		{name: "identity headers must not reuse managed headers", mutate: func(c *Config) { c.IdentityHeaders.Subject = "Authorization" }, want: "identity_headers.subject"},
		{name: "identity headers must differ", mutate: func(c *Config) { c.IdentityHeaders.Roles = "x-vigil-subject" }, want: "identity_headers.roles"},
		{name: "the device header must be a header name", mutate: func(c *Config) { c.DeviceHeader = "X Device" }, want: "device_header"},
		{name: "client_auth must be known", mutate: func(c *Config) { c.TLS = &ListenerTLS{Cert: "c", Key: "k", ClientAuth: "maybe"} }, want: "tls.client_auth"},
		{name: "requiring client certificates needs a CA", mutate: func(c *Config) { c.TLS = &ListenerTLS{Cert: "c", Key: "k", ClientAuth: "require"} }, want: "tls.client_ca"},
		{name: "h2c and tls exclude each other", mutate: func(c *Config) {
			c.TLS = &ListenerTLS{Cert: "c", Key: "k"}
			c.H2C = true
		}, want: "h2c"},
		{name: "the forward-auth path must be absolute", mutate: func(c *Config) { c.ForwardAuth.Path = "auth" }, want: "forward_auth.path"},
		{name: "the realm must be quotable", mutate: func(c *Config) { c.Realm = `a"b` }, want: "realm"},
		{name: "the authorization URI must be https", mutate: func(c *Config) { c.AuthorizationURI = "http://login" }, want: "authorization_uri"},
		{name: "max_header_bytes is bounded", mutate: func(c *Config) { c.MaxHeaderBytes = 10 }, want: "max_header_bytes"},
		{name: "timeouts must not be negative", mutate: func(c *Config) { c.ReadTimeout = -time.Second }, want: "read_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			c.SetDefaults()
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v, want one naming %q", err, tt.want)
			}
		})
	}
	t.Run("defaults are filled in", func(t *testing.T) {
		c := validConfig()
		c.SetDefaults()
		u := c.Upstreams[0]
		if !u.PassesAuthorization() || u.DialTimeout != DefaultDialTimeout || c.IdentityHeaders.Subject != DefaultSubjectHeader ||
			c.ForwardAuth.Path != DefaultForwardAuthPath || !c.ForwardAuth.Enable() || c.Realm != "vigil" {
			t.Errorf("defaults not applied: %+v", c)
		}
	})
}

func TestClaimConversion(t *testing.T) {
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(`{
		"s": "x", "b": true, "i": 42, "neg": -7, "f": 1.5, "tiny": 1.23456, "big": 123456789012345678901234567890,
		"arr": ["a", 1, null], "obj": {"k": "v", "n": null}, "nil": null,
		"deep": {"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":1}}}}}}}}}}
	}`))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		t.Fatal(err)
	}
	tok := &identity.Token{Subject: "u1", Claims: claims, Roles: []string{"r1"}, PrincipalType: "User", RoleType: "Role"}
	if uid := principalUID(tok); uid != types.NewEntityUID("User", "u1") {
		t.Fatalf("principal = %v", uid)
	}
	e := newTokenFacts(tok).principal(engine.View{})
	get := func(k string) (types.Value, bool) { return e.Attributes.Get(types.String(k)) }
	for k, want := range map[string]types.Value{
		"s":   types.String("x"),
		"b":   types.Boolean(true),
		"i":   types.Long(42),
		"neg": types.Long(-7),
		"f":   types.Decimal(mustDecimal(t, "1.5")),
		"arr": types.NewSet(types.String("a"), types.Long(1)),
		"obj": types.NewRecord(types.RecordMap{"k": types.String("v")}),
	} {
		got, ok := get(k)
		if !ok || !got.Equal(want) {
			t.Errorf("attribute %s = %v, want %v", k, got, want)
		}
	}
	for _, k := range []string{"tiny", "big", "nil"} {
		if v, ok := get(k); ok {
			t.Errorf("attribute %s = %v, want it dropped", k, v)
		}
	}
	if deep, ok := get("deep"); !ok || strings.Contains(deep.String(), `"j"`) {
		t.Errorf("deep claim = %v, want it cut below depth %d", deep, maxClaimDepth)
	}
	if !e.Parents.Contains(types.NewEntityUID("Role", "r1")) {
		t.Errorf("parents = %v, want Role::\"r1\"", e.Parents)
	}

	t.Run("a stored principal keeps its parents and attributes under the claims", func(t *testing.T) {
		snap, err := policy.Compile(policy.Bundle{Files: []policy.File{
			{Name: "p.cedar", Data: []byte(`permit(principal, action, resource);`)},
			{Name: "e.entities.json", Data: []byte(`[{"uid":{"type":"User","id":"u1"},"attrs":{"dept":"eng","s":"stored"},"parents":[{"type":"Group","id":"g"}]}]`)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		e := newTokenFacts(tok).principal(engine.View{Policies: snap})
		if v, _ := e.Attributes.Get("dept"); !v.Equal(types.String("eng")) {
			t.Errorf("stored attribute lost: %v", e.Attributes)
		}
		if v, _ := e.Attributes.Get("s"); !v.Equal(types.String("x")) {
			t.Errorf("claim should win over stored attribute: %v", v)
		}
		if !e.Parents.Contains(types.NewEntityUID("Group", "g")) || !e.Parents.Contains(types.NewEntityUID("Role", "r1")) {
			t.Errorf("parents = %v, want stored and token roles", e.Parents)
		}
	})

	t.Run("the claim budget bounds huge tokens", func(t *testing.T) {
		arr := make([]any, 10*maxClaimValues)
		for i := range arr {
			arr[i] = "x"
		}
		budget := maxClaimValues
		v, _ := engine.ClaimValue(arr, 0, &budget)
		if budget != 0 || v.(types.Set).Len() > 1 {
			t.Errorf("budget %d after conversion, set %v", budget, v)
		}
	})
}

func mustDecimal(t *testing.T, s string) types.Decimal {
	t.Helper()
	d, err := types.ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestStepUp(t *testing.T) {
	forbid := func(ann map[string]string) decision.Policy {
		return decision.Policy{ID: "p", Effect: "forbid", Annotations: ann}
	}
	tests := []struct {
		name       string
		policies   []decision.Policy
		wantOK     bool
		wantACR    string
		wantMaxAge int64
	}{
		{name: "a default deny is no step-up"},
		{name: "an annotated forbid asks for its ACR", policies: []decision.Policy{forbid(map[string]string{"acr_values": "urn:mfa"})}, wantOK: true, wantACR: "urn:mfa", wantMaxAge: -1},
		{name: "several annotated forbids merge values and take the smallest max_age", policies: []decision.Policy{
			forbid(map[string]string{"acr_values": "urn:mfa urn:hw", "max_age": "600"}),
			forbid(map[string]string{"acr_values": "urn:hw", "max_age": "60"}),
		}, wantOK: true, wantACR: "urn:mfa urn:hw", wantMaxAge: 60},
		{name: "one forbid without the annotation makes it a plain denial", policies: []decision.Policy{
			forbid(map[string]string{"acr_values": "urn:mfa"}), forbid(nil),
		}},
		{name: "an ACR value that cannot be quoted is not sent", policies: []decision.Policy{forbid(map[string]string{"acr_values": `urn:"x"`})}},
		{name: "a malformed max_age is not sent", policies: []decision.Policy{forbid(map[string]string{"acr_values": "urn:mfa", "max_age": "soon"})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acr, maxAge, ok := stepUp(tt.policies)
			if ok != tt.wantOK || acr != tt.wantACR || (ok && maxAge != tt.wantMaxAge) {
				t.Errorf("stepUp = %q, %d, %v; want %q, %d, %v", acr, maxAge, ok, tt.wantACR, tt.wantMaxAge, tt.wantOK)
			}
		})
	}
}

func TestBearer(t *testing.T) {
	tests := []struct {
		name               string
		header             []string
		tok                string
		present, malformed bool
	}{
		{name: "no header means no token"},
		{name: "a bearer token is extracted", header: []string{"Bearer abc"}, tok: "abc", present: true},
		{name: "the scheme is case-insensitive", header: []string{"bEaReR abc "}, tok: "abc", present: true},
		{name: "another scheme is no bearer token", header: []string{"Basic dXNlcg=="}},
		{name: "an empty bearer token is malformed", header: []string{"Bearer   "}, present: true, malformed: true},
		{name: "two headers are malformed", header: []string{"Bearer a", "Bearer b"}, present: true, malformed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Header: http.Header{}}
			if tt.header != nil {
				r.Header["Authorization"] = tt.header
			}
			tok, present, malformed := bearer(r)
			if tok != tt.tok || present != tt.present || malformed != tt.malformed {
				t.Errorf("bearer = %q, %v, %v", tok, present, malformed)
			}
		})
	}
}

func TestUpstreamURL(t *testing.T) {
	for _, tt := range []struct{ base, uri, want string }{
		{"http://up:1", "/ws?x=1", "http://up:1/ws?x=1"},
		{"http://up:1/api/", "/ws", "http://up:1/api/ws"},
		{"http://up:1/api", "/a%20b/c%3Fd", "http://up:1/api/a%20b/c%3Fd"},
	} {
		base, _ := url.Parse(tt.base)
		r := &http.Request{URL: mustURL(t, tt.uri)}
		if got := upstreamURL(base, r).String(); got != tt.want {
			t.Errorf("upstreamURL(%s, %s) = %s, want %s", tt.base, tt.uri, got, tt.want)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.ParseRequestURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestContextShape(t *testing.T) {
	c := &call{
		method: "GET", path: "/todos/1", host: "api.example", scheme: "https", ip: netip.MustParseAddr("198.51.100.2"),
		deviceID: "dev-1", geo: Geo{Country: "DE", City: "Berlin"},
		token: &identity.Token{Issuer: "https://iss", Subject: "alice", IssuedAt: time.Unix(100, 0), Expiry: time.Unix(200, 0),
			Scopes: []string{"read"}, ACR: "urn:mfa", AMR: []string{"pwd", "otp"}, SessionID: "s1", ClientID: "app", JTI: "j1",
			Claims: map[string]any{"xms_cc": []any{"cp1"}}},
		match: route.Match{Params: map[string]string{"id": "1"}},
	}
	req := buildRequest(engine.View{}, c, time.Unix(150, 0), nil, nil)
	got, err := json.Marshal(req.Context)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"device":{"compliant":false,"compliance_time":0,"id":"dev-1","managed":false},` +
		`"geo":{"city":"Berlin","country":"DE"},` +
		`"request":{"host":"api.example","ip":{"__extn":{"fn":"ip","arg":"198.51.100.2"}},"method":"GET","params":{"id":"1"},"path":"/todos/1","scheme":"https","time":{"__extn":{"fn":"datetime","arg":"1970-01-01T00:02:30.000Z"}},"unix":150},` +
		`"risk":{"level":"LOW","reasons":[],"score":0,"time":0},` +
		`"session":{"assurance":"urn:mfa","assurance_namespace":"","assurance_time":0,"id":"s1"},` +
		`"token":{"acr":"urn:mfa","amr":["otp","pwd"],"client_id":"app","exp":200,"iat":100,"iss":"https://iss","jti":"j1","scopes":["read"],"sid":"s1","sub":"alice","xms_cc":["cp1"]}}`
	if canon(t, string(got)) != canon(t, want) {
		t.Errorf("context =\n%s\nwant\n%s", got, want)
	}
	if req.Identity == nil || req.Identity.Subject != "alice" || req.Identity.DeviceID != "dev-1" || req.Identity.IssuedAt.Unix() != 100 {
		t.Errorf("identity = %+v", req.Identity)
	}
}

// canon normalises a JSON document (sorted keys, sets sorted by value).
func canon(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	var sortSets func(any) any
	sortSets = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				v[k] = sortSets(e)
			}
		case []any:
			strs := make([]string, len(v))
			for i, e := range v {
				b, _ := json.Marshal(sortSets(e))
				strs[i] = string(b)
			}
			slices.Sort(strs)
			out := make([]any, len(strs))
			for i, s := range strs {
				out[i] = json.RawMessage(s)
			}
			return out
		}
		return v
	}
	b, _ := json.Marshal(sortSets(v))
	return string(b)
}

// The documented context shape is a valid Cedar schema, policies that use
// every attribute validate against it, and a context the gateway builds
// satisfies such a policy without evaluation errors.
func TestContextMatchesDocumentedSchema(t *testing.T) {
	var b policy.Bundle
	for _, n := range []string{"gateway.cedarschema", "every-attribute.cedar"} {
		data, err := os.ReadFile(filepath.Join("testdata", "schema", n))
		if err != nil {
			t.Fatal(err)
		}
		b.Files = append(b.Files, policy.File{Name: n, Data: data})
	}
	snap, err := policy.Compile(b)
	if err != nil {
		t.Fatalf("schema or policy rejected: %v", err)
	}
	c := &call{
		method: "GET", path: "/todos/1", host: "api.example", scheme: "https", ip: netip.MustParseAddr("198.51.100.2"),
		deviceID: "dev-1", geo: Geo{Country: "DE", City: "Berlin"},
		token: &identity.Token{Issuer: "https://iss", Subject: "alice", IssuedAt: time.Unix(100, 0), Expiry: time.Unix(2e9, 0),
			Scopes: []string{"read"}, AMR: []string{"pwd"}, SessionID: "s1", ClientID: "app", JTI: "j1", PrincipalType: "User"},
		match: route.Match{
			Action:   types.NewEntityUID("Action", "GET /todos/{id}"),
			Resource: types.NewEntityUID("Todo", "1"),
			Params:   map[string]string{"id": "1"},
		},
	}
	v := engine.View{Policies: snap}
	res := v.Decide(buildRequest(v, c, time.Unix(1e9, 0), nil, nil))
	if !res.Allow || len(res.Errors) > 0 {
		t.Fatalf("decision = %+v; want allow without errors", res)
	}

	t.Run("an anonymous request has every attribute too", func(t *testing.T) {
		anon := *c
		anon.token = nil
		res := v.Decide(buildRequest(v, &anon, time.Unix(1e9, 0), nil, nil))
		if len(res.Errors) > 0 {
			t.Fatalf("evaluation errors: %+v", res.Errors)
		}
	})
}
