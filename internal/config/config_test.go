package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		doc     string
		env     map[string]string
		wantErr string // substring; "" means success
		check   func(t *testing.T, c *Config)
	}{
		{name: "an empty document gives the defaults", doc: "", check: func(t *testing.T, c *Config) {
			if c.Server.Addr != "127.0.0.1:8080" || c.Server.AdminAddr != "127.0.0.1:8081" || !c.AuthZEN.IsEnabled() || !c.Policies.WatchEnabled() {
				t.Fatalf("bad defaults: %+v", c)
			}
		}},
		{name: "unknown keys are errors with their line", doc: "server:\n  addr: 127.0.0.1:1\n  adress: x\n", wantErr: `[3:3] unknown field "adress"`},
		{name: "unknown top-level keys are errors", doc: "polices:\n  dir: x\n", wantErr: `unknown field "polices"`},
		{name: "wrong types are errors", doc: "policies:\n  history: many\n", wantErr: "history"},
		{name: "env references are expanded", doc: "admin:\n  keys: [\"${ADMIN_KEY}\"]\n", env: map[string]string{"ADMIN_KEY": "0123456789abcdef0123"}, check: func(t *testing.T, c *Config) {
			if c.Admin.Keys[0] != "0123456789abcdef0123" {
				t.Fatal(c.Admin.Keys)
			}
		}},
		{name: "an unset env reference is an error naming it", doc: "admin:\n  keys: [\"${NOPE}\"]\n", wantErr: "environment variable NOPE is not set"},
		{name: "a default applies when the variable is unset", doc: "server:\n  addr: \"${ADDR:-127.0.0.1:9999}\"\n", check: func(t *testing.T, c *Config) {
			if c.Server.Addr != "127.0.0.1:9999" {
				t.Fatal(c.Server.Addr)
			}
		}},
		{name: "$$ is a literal dollar", doc: "data_dir: \"/tmp/a$$b\"\n", check: func(t *testing.T, c *Config) {
			if c.DataDir != "/tmp/a$b" {
				t.Fatal(c.DataDir)
			}
		}},
		{name: "validation names the key", doc: "server:\n  addr: nowhere\n", wantErr: `server.addr: "nowhere" is not HOST:PORT`},
		{name: "short keys are refused", doc: "authzen:\n  auth:\n    keys: [short]\n", wantErr: "authzen.auth.keys[0]: is 5 characters"},
		{name: "the same address twice is refused", doc: "server:\n  addr: 127.0.0.1:1\n  admin_addr: 127.0.0.1:1\n", wantErr: "server.admin_addr: must differ"},
		{name: "the authzen section takes limits and an issuer", doc: "authzen:\n  issuer: https://pdp.example.com\n  limits:\n    max_depth: 10\n  auth:\n    keys: [\"0123456789abcdef\"]\n", check: func(t *testing.T, c *Config) {
			if c.AuthZEN.Issuer != "https://pdp.example.com" || c.AuthZEN.Limits.MaxDepth != 10 || c.AuthZEN.Limits.MaxBodyBytes == 0 {
				t.Fatalf("%+v", c.AuthZEN)
			}
		}},
		{name: "authzen limits are validated", doc: "authzen:\n  limits:\n    max_depth: 1\n", wantErr: "authzen.limits.max_depth"},
		{name: "bad log level", doc: "log:\n  level: loud\n", wantErr: `log.level: "loud"`},
		{name: "gateway errors are prefixed with their section", doc: "gateway:\n  listen: 127.0.0.1:9000\n  upstreams:\n    - name: api\n      url: \"::nope\"\n", wantErr: "gateway."},
		{name: "a gateway needs routes", doc: "gateway:\n  listen: 127.0.0.1:9000\n  upstreams:\n    - name: api\n      url: http://127.0.0.1:9001\nidentity:\n  issuers:\n    - issuer: https://idp.example\n      jwks_uri: https://idp.example/jwks\n      audiences: [api]\n", wantErr: "routing.routes: the gateway needs at least one route"},
		{name: "routes must name configured upstreams", doc: "gateway:\n  listen: 127.0.0.1:9000\n  upstreams:\n    - name: api\n      url: http://127.0.0.1:9001\nidentity:\n  issuers:\n    - issuer: https://idp.example\n      jwks_uri: https://idp.example/jwks\n      audiences: [api]\nrouting:\n  routes:\n    - method: GET\n      path: /x\n      upstream: other\n", wantErr: `routing.routes[0].upstream: "other" is not the name`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc), env(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Run("relative paths are relative to the config file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "vigil.yaml")
		os.WriteFile(path, []byte("policies:\n  dir: policies\n"), 0o644)
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Policies.Dir != filepath.Join(dir, "policies") || c.File != path {
			t.Fatal(c.Policies.Dir)
		}
	})
	t.Run("errors name the file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "vigil.yaml")
		os.WriteFile(path, []byte("log:\n  level: loud\n"), 0o644)
		_, err := Load(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+": ") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a missing file is a clear error", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
		if err == nil || !strings.Contains(err.Error(), "read config") {
			t.Fatal(err)
		}
	})
	t.Run("an oversized file is refused", func(t *testing.T) {
		_, err := Parse([]byte(strings.Repeat("#", MaxFileBytes+1)), env(nil))
		if err == nil || !strings.Contains(err.Error(), "at most") {
			t.Fatal(err)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("server:\n  addr: 127.0.0.1:1\n"))
	f.Add([]byte("admin:\n  keys: [\"${X:-0123456789abcdef}\"]\n"))
	f.Add([]byte("gateway:\n  listen: 127.0.0.1:9\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse(data, env(map[string]string{"X": "y"}))
	})
}
