package route

import (
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

func TestConfigDecodesFromYAML(t *testing.T) {
	src := `
routes:
  - method: GET
    path: /todos/{id}
    action: can_read_todo
    resource: {type: Todo, id: "{id}"}
  - method: [PUT, PATCH]
    path: /todos/{id}
  - method: "*"
    path: /{path...}
    anonymous: true
    upstream: api
action_type: App::Action
`
	var cfg Config
	if err := yaml.UnmarshalWithOptions([]byte(src), &cfg, yaml.Strict()); err != nil {
		t.Fatalf("decode: %v", err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := strings.Join(cfg.Routes[1].Method, ","); got != "PUT,PATCH" {
		t.Errorf("methods = %q", got)
	}
	if got := cfg.Routes[0].Method; len(got) != 1 || got[0] != "GET" {
		t.Errorf("single method = %q", got)
	}
	if r := cfg.Routes[2]; !r.Anonymous || r.Upstream != "api" || r.Method[0] != "*" {
		t.Errorf("catch-all = %+v", r)
	}

	t.Run("unknown keys are rejected in strict mode", func(t *testing.T) {
		var c Config
		err := yaml.UnmarshalWithOptions([]byte("routes:\n  - method: GET\n    path: /a\n    actoin: x\n"), &c, yaml.Strict())
		if err == nil {
			t.Fatal("decode succeeded, want an unknown-field error")
		}
	})
	t.Run("a method must be a string or a list", func(t *testing.T) {
		var c Config
		if err := yaml.Unmarshal([]byte("routes:\n  - method: {a: b}\n    path: /a\n"), &c); err == nil {
			t.Fatal("decode succeeded, want an error")
		}
	})
	t.Run("a single method marshals as a string", func(t *testing.T) {
		out, err := yaml.Marshal(Route{Method: Methods{"GET"}, Path: "/a"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "method: GET\n") {
			t.Errorf("marshalled %q", out)
		}
	})
}

func TestSetDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.ActionType != DefaultActionType {
		t.Errorf("action_type = %q, want %q", c.ActionType, DefaultActionType)
	}
	c.ActionType = "X::Action"
	c.SetDefaults()
	if c.ActionType != "X::Action" {
		t.Errorf("SetDefaults overwrote action_type: %q", c.ActionType)
	}
}

func TestValidate(t *testing.T) {
	get := Methods{"GET"}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{"an empty config is valid", Config{}, ""},
		{"a route needs a method", Config{Routes: []Route{{Path: "/a"}}}, "routes[0].method: required"},
		{"a lowercase method is invalid", Config{Routes: []Route{{Method: Methods{"get"}, Path: "/a"}}}, `routes[0].method: "get"`},
		{"star cannot be combined", Config{Routes: []Route{{Method: Methods{"GET", "*"}, Path: "/a"}}}, `"*" cannot be combined`},
		{"a method cannot repeat", Config{Routes: []Route{{Method: Methods{"GET", "GET"}, Path: "/a"}}}, "listed twice"},
		{"a route needs a path", Config{Routes: []Route{{Method: get}}}, `routes[0].path: "": must start with "/"`},
		{"a path must be absolute", Config{Routes: []Route{{Method: get, Path: "a"}}}, "routes[0].path"},
		{"a path must not have empty segments", Config{Routes: []Route{{Method: get, Path: "//a"}}}, "empty path segment"},
		{"a path must not have dot segments", Config{Routes: []Route{{Method: get, Path: "/a/../b"}}}, "dot segment"},
		{"a path must not have encoded slashes", Config{Routes: []Route{{Method: get, Path: "/a%2Fb"}}}, "encoded slash"},
		{"a parameter needs a name", Config{Routes: []Route{{Method: get, Path: "/a/{}"}}}, "empty parameter name"},
		{"a parameter must be closed", Config{Routes: []Route{{Method: get, Path: "/a/{x"}}}, "whole segment"},
		{"a parameter must span the segment", Config{Routes: []Route{{Method: get, Path: "/a/b{x}"}}}, "whole segment"},
		{"a parameter name is restricted", Config{Routes: []Route{{Method: get, Path: "/a/{x y}"}}}, "may contain only"},
		{"a rest parameter must be last", Config{Routes: []Route{{Method: get, Path: "/a/{x...}/b"}}}, "must be the last segment"},
		{"parameter names must be unique", Config{Routes: []Route{{Method: get, Path: "/a/{x}/{x}"}}}, "appears twice"},
		{"a resource type must be a Cedar type",
			Config{Routes: []Route{{Method: get, Path: "/a", Resource: Resource{Type: "todo item"}}}}, "routes[0].resource.type"},
		{"a resource type must not be a reserved word",
			Config{Routes: []Route{{Method: get, Path: "/a", Resource: Resource{Type: "if"}}}}, "routes[0].resource.type"},
		{"a namespaced resource type is valid",
			Config{Routes: []Route{{Method: get, Path: "/a", Resource: Resource{Type: "App::Todo"}}}}, ""},
		{"a resource id needs a type",
			Config{Routes: []Route{{Method: get, Path: "/a/{id}", Resource: Resource{ID: "{id}"}}}}, "resource.type: required when resource.id is set"},
		{"a resource id must reference existing parameters",
			Config{Routes: []Route{{Method: get, Path: "/a/{id}", Resource: Resource{Type: "A", ID: "{key}"}}}}, "routes[0].resource.id"},
		{"a rest parameter is referenced without dots",
			Config{Routes: []Route{{Method: get, Path: "/a/{p...}", Resource: Resource{Type: "A", ID: "{p...}"}}}}, "write {p}"},
		{"a resource id must balance braces",
			Config{Routes: []Route{{Method: get, Path: "/a/{id}", Resource: Resource{Type: "A", ID: "{id"}}}}, "unmatched"},
		{"a stray closing brace is invalid",
			Config{Routes: []Route{{Method: get, Path: "/a/{id}", Resource: Resource{Type: "A", ID: "x}"}}}}, "unmatched"},
		{"an action must not have surrounding spaces",
			Config{Routes: []Route{{Method: get, Path: "/a", Action: " read"}}}, "routes[0].action"},
		{"the action type must be a Cedar type", Config{ActionType: "not a type"}, "action_type"},
		{"a base path needs an OpenAPI document", Config{OpenAPIBasePath: "/v1"}, "openapi_base_path"},
		{"a base path must not end in a slash", Config{OpenAPI: "x.yaml", OpenAPIBasePath: "/v1/"}, "openapi_base_path"},
		{"a base path must start with a slash", Config{OpenAPI: "x.yaml", OpenAPIBasePath: "v1"}, "openapi_base_path"},
		{"conflicts are reported", Config{Routes: []Route{{Method: get, Path: "/a/{x}"}, {Method: get, Path: "/a/{y}"}}}, "conflicts with"},
		{"every invalid route is reported",
			Config{Routes: []Route{{Path: "/a"}, {Method: get, Path: "b"}}}, "routes[1].path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.SetDefaults()
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Validate succeeded, want error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Validate error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestCompileLimitsErrorCount(t *testing.T) {
	routes := make([]Route, 50)
	for i := range routes {
		routes[i] = Route{Path: "/a"}
	}
	_, err := Compile(Config{Routes: routes}, nil)
	if err == nil || !strings.Contains(err.Error(), "and 30 more errors") {
		t.Fatalf("err = %v", err)
	}
}
