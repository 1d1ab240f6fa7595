package identity

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func validIssuer() IssuerConfig {
	return IssuerConfig{
		Issuer:    "https://idp.example.com/realms/vigil",
		Discovery: Discovery{Enabled: true},
		Audiences: []string{"api://vigil"},
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{Issuers: []IssuerConfig{validIssuer()}}
	cfg.Issuers[0].Introspection = &IntrospectionConfig{Endpoint: "https://idp.example.com/introspect", ClientID: "c", ClientSecret: "s"}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	ic := cfg.Issuers[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"cache_size", cfg.CacheSize, DefaultCacheSize},
		{"algorithms", strings.Join(ic.Algorithms, ","), "RS256,PS256,ES256,EdDSA"},
		{"leeway", ic.Leeway, 30 * time.Second},
		{"principal_type", ic.PrincipalType, "User"},
		{"role_type", ic.RoleType, "Role"},
		{"max_token_bytes", ic.MaxTokenBytes, 8192},
		{"introspection.cache_ttl", ic.Introspection.CacheTTL, 30 * time.Second},
		{"introspection.timeout", ic.Introspection.Timeout, 5 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"a missing issuer is reported", func(c *Config) { c.Issuers[0].Issuer = "" }, "issuers[0].issuer: required"},
		{"a duplicate issuer is reported", func(c *Config) { c.Issuers = append(c.Issuers, c.Issuers[0]) }, "issuers[1].issuer: "},
		{"discovery and jwks_uri together are reported", func(c *Config) { c.Issuers[0].JWKSURI = "https://idp.example.com/jwks" }, "issuers[0].discovery: set either"},
		{"an issuer without any key source is reported", func(c *Config) { c.Issuers[0].Discovery = Discovery{} }, "issuers[0].algorithms[0]: RS256 needs discovery or jwks_uri"},
		{"discovery on a non-URL issuer is reported", func(c *Config) { c.Issuers[0].Issuer = "vigil-idp" }, "issuers[0].issuer: discovery needs an http(s) issuer URL"},
		{"a plain-http jwks_uri on a remote host is reported", func(c *Config) {
			c.Issuers[0].Discovery = Discovery{}
			c.Issuers[0].JWKSURI = "http://idp.example.com/jwks"
		}, "issuers[0].jwks_uri: \"http://idp.example.com/jwks\" uses plain http"},
		{"a relative jwks_uri is reported", func(c *Config) {
			c.Issuers[0].Discovery = Discovery{}
			c.Issuers[0].JWKSURI = "/jwks"
		}, "issuers[0].jwks_uri: \"/jwks\" must be an absolute URL"},
		{"missing audiences are reported", func(c *Config) { c.Issuers[0].Audiences = nil }, "issuers[0].audiences: at least one"},
		{"an empty audience is reported", func(c *Config) { c.Issuers[0].Audiences = []string{""} }, "issuers[0].audiences[0]: must not be empty"},
		{"alg none is reported", func(c *Config) { c.Issuers[0].Algorithms = []string{"RS256", "none"} }, `issuers[0].algorithms[1]: "none" is never accepted`},
		{"an unknown algorithm is reported", func(c *Config) { c.Issuers[0].Algorithms = []string{"RS1"} }, `issuers[0].algorithms[0]: unsupported algorithm "RS1"`},
		{"a duplicate algorithm is reported", func(c *Config) { c.Issuers[0].Algorithms = []string{"RS256", "RS256"} }, "issuers[0].algorithms[1]: RS256 is listed twice"},
		{"HS256 without a secret is reported", func(c *Config) { c.Issuers[0].Algorithms = []string{"HS256"} }, "issuers[0].algorithms[0]: HS256 needs hmac_secret"},
		{"a short HMAC secret is reported", func(c *Config) {
			c.Issuers[0].Algorithms = []string{"HS256"}
			c.Issuers[0].HMACSecret = "short"
		}, "issuers[0].hmac_secret: HS256 needs at least 32 bytes"},
		{"HS512 needs a 64-byte secret", func(c *Config) {
			c.Issuers[0].Algorithms = []string{"HS512"}
			c.Issuers[0].HMACSecret = strings.Repeat("x", 32)
		}, "issuers[0].hmac_secret: HS512 needs at least 64 bytes"},
		{"an HMAC secret without an HS algorithm is reported", func(c *Config) { c.Issuers[0].HMACSecret = strings.Repeat("x", 32) }, "issuers[0].hmac_secret: set, but no HS256"},
		{"token_type secevent+jwt is reported", func(c *Config) { c.Issuers[0].TokenType = "application/secevent+jwt" }, "issuers[0].token_type: security event tokens"},
		{"a malformed token_type is reported", func(c *Config) { c.Issuers[0].TokenType = "at jwt" }, "issuers[0].token_type: \"at jwt\" is not a media type"},
		{"a leeway above 60s is reported", func(c *Config) { c.Issuers[0].Leeway = 2 * time.Minute }, "issuers[0].leeway: must be between 0s and 1m0s"},
		{"a negative leeway is reported", func(c *Config) { c.Issuers[0].Leeway = -time.Second }, "issuers[0].leeway"},
		{"an invalid principal_type is reported", func(c *Config) { c.Issuers[0].PrincipalType = "not a type" }, "issuers[0].principal_type"},
		{"an invalid role_type is reported", func(c *Config) { c.Issuers[0].RoleType = "Role::" }, "issuers[0].role_type"},
		{"a roles_claim with an empty segment is reported", func(c *Config) { c.Issuers[0].RolesClaim = "realm_access..roles" }, "issuers[0].roles_claim"},
		{"a tiny max_token_bytes is reported", func(c *Config) { c.Issuers[0].MaxTokenBytes = 10 }, "issuers[0].max_token_bytes"},
		{"a negative cache_size is reported", func(c *Config) { c.CacheSize = -1 }, "cache_size: must be between"},
		{"introspection without endpoint and credentials is reported", func(c *Config) {
			c.Issuers[0].Introspection = &IntrospectionConfig{}
		}, "issuers[0].introspection.endpoint: required\nissuers[0].introspection.client_id: required\nissuers[0].introspection.client_secret: required"},
		{"a long introspection cache_ttl is reported", func(c *Config) {
			c.Issuers[0].Introspection = &IntrospectionConfig{Endpoint: "https://x.example/i", ClientID: "c", ClientSecret: "s", CacheTTL: time.Hour}
		}, "issuers[0].introspection.cache_ttl"},
		{"two introspecting issuers are reported", func(c *Config) {
			in := &IntrospectionConfig{Endpoint: "https://x.example/i", ClientID: "c", ClientSecret: "s"}
			second := validIssuer()
			second.Issuer = "https://other.example"
			second.Introspection = in
			c.Issuers[0].Introspection = in
			c.Issuers = append(c.Issuers, second)
		}, "issuers[1].introspection: only one issuer may introspect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Issuers: []IssuerConfig{validIssuer()}}
			tc.modify(&cfg)
			cfg.SetDefaults()
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate succeeded; want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}

func TestConfigValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*IssuerConfig)
	}{
		{"an http jwks_uri on loopback is accepted", func(ic *IssuerConfig) {
			ic.Discovery = Discovery{}
			ic.JWKSURI = "http://127.0.0.1:8080/jwks"
		}},
		{"an http jwks_uri is accepted with allow_http", func(ic *IssuerConfig) {
			ic.Discovery = Discovery{}
			ic.JWKSURI = "http://keycloak:8080/jwks"
			ic.AllowHTTP = true
		}},
		{"an HMAC-only issuer is accepted", func(ic *IssuerConfig) {
			ic.Discovery = Discovery{}
			ic.Algorithms = []string{"HS256"}
			ic.HMACSecret = strings.Repeat("k", 32)
		}},
		{"an introspection-only issuer is accepted", func(ic *IssuerConfig) {
			ic.Discovery = Discovery{}
			ic.Introspection = &IntrospectionConfig{Endpoint: "https://idp.example.com/introspect", ClientID: "c", ClientSecret: "s"}
		}},
		{"a namespaced roles claim is accepted", func(ic *IssuerConfig) { ic.RolesClaim = "https://example.com/roles" }},
		{"a namespaced principal type is accepted", func(ic *IssuerConfig) { ic.PrincipalType = "Todo::User" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Issuers: []IssuerConfig{validIssuer()}}
			tc.modify(&cfg.Issuers[0])
			cfg.SetDefaults()
			if err := cfg.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestConfigDecodesFromYAML(t *testing.T) {
	data, err := os.ReadFile("testdata/identity.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := yaml.UnmarshalWithOptions(data, &cfg, yaml.Strict()); err != nil {
		t.Fatalf("decode: %v", err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if len(cfg.Issuers) != 3 {
		t.Fatalf("%d issuers; want 3", len(cfg.Issuers))
	}
	kc, auth0, opaque := cfg.Issuers[0], cfg.Issuers[1], cfg.Issuers[2]
	if kc.Discovery != (Discovery{Enabled: true}) || kc.RolesClaim != "realm_access.roles" || kc.Leeway != 45*time.Second {
		t.Errorf("keycloak issuer = %+v", kc)
	}
	if auth0.Discovery.URL != "https://tenant.eu.auth0.com/.well-known/openid-configuration" || !slices.Equal(auth0.Algorithms, []string{"RS256"}) {
		t.Errorf("auth0 issuer = %+v", auth0)
	}
	if opaque.Introspection == nil || opaque.Introspection.CacheTTL != 10*time.Second || opaque.Introspection.Timeout != 5*time.Second {
		t.Errorf("opaque issuer introspection = %+v", opaque.Introspection)
	}
	if cfg.CacheSize != 50000 {
		t.Errorf("cache_size = %d", cfg.CacheSize)
	}
}

func TestConfigRejectsUnknownYAMLKeys(t *testing.T) {
	data := []byte("issuers:\n  - issuer: https://x.example\n    audience: api\n")
	var cfg Config
	if err := yaml.UnmarshalWithOptions(data, &cfg, yaml.Strict()); err == nil {
		t.Error("decode succeeded with the unknown key audience")
	}
}

func TestDiscoveryEncoding(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Discovery
	}{
		{"true enables the default document", `true`, Discovery{Enabled: true}},
		{"false disables discovery", `false`, Discovery{}},
		{"a URL enables that document", `"https://x.example/.well-known/oauth-authorization-server"`, Discovery{Enabled: true, URL: "https://x.example/.well-known/oauth-authorization-server"}},
		{"null disables discovery", `null`, Discovery{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fromJSON, fromYAML Discovery
			if err := json.Unmarshal([]byte(tc.in), &fromJSON); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(tc.in), &fromYAML); err != nil {
				t.Fatal(err)
			}
			if fromJSON != tc.want || fromYAML != tc.want {
				t.Errorf("JSON %+v, YAML %+v; want %+v", fromJSON, fromYAML, tc.want)
			}
			out, err := json.Marshal(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			var back Discovery
			if err := json.Unmarshal(out, &back); err != nil || back != tc.want {
				t.Errorf("round trip %s = %+v, %v", out, back, err)
			}
		})
	}
	var d Discovery
	if err := json.Unmarshal([]byte(`42`), &d); err == nil {
		t.Error("a number was accepted as discovery")
	}
	if got := (Discovery{Enabled: true}).DocumentURL("https://idp.example/realms/x/"); got != "https://idp.example/realms/x/.well-known/openid-configuration" {
		t.Errorf("DocumentURL = %q", got)
	}
}

func TestNewVerifierRejectsInvalidConfig(t *testing.T) {
	_, err := NewVerifier(Config{Issuers: []IssuerConfig{{Issuer: "x"}}}, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "issuers[0].audiences") {
		t.Errorf("NewVerifier error = %v; want one naming issuers[0].audiences", err)
	}
}

func TestNewVerifierDoesNotModifyTheCallersConfig(t *testing.T) {
	cfg := Config{Issuers: []IssuerConfig{validIssuer()}}
	cfg.Issuers[0].Introspection = &IntrospectionConfig{Endpoint: "https://idp.example.com/i", ClientID: "c", ClientSecret: "s"}
	v, err := NewVerifier(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if cfg.Issuers[0].Algorithms != nil || cfg.Issuers[0].Introspection.CacheTTL != 0 || cfg.CacheSize != 0 {
		t.Errorf("caller's config was modified: %+v", cfg)
	}
}
