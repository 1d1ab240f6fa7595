package route

import (
	"errors"
	"fmt"
)

// Defaults.
const (
	DefaultActionType   = "Action"
	DefaultResourceType = "Route"
)

// Config is the route map section of vigil.yaml.
//
//	routes:
//	  - method: GET
//	    path: /todos/{id}
//	    action: can_read_todo
//	    resource: {type: Todo, id: "{id}"}
//	  - method: [GET, HEAD]
//	    path: /healthz
//	    anonymous: true
//	openapi: api/openapi.yaml
//
// Requests that match no route are always denied. To send every request to
// the policy instead, add a catch-all route such as
// {method: "*", path: "/{path...}"}.
type Config struct {
	// Routes are the explicitly configured routes. They take precedence
	// over OpenAPI operations with the same method and path shape.
	Routes []Route `yaml:"routes"`
	// OpenAPI is the path of an OpenAPI 3 document (YAML or JSON) whose
	// operations become routes; see ImportOpenAPI for the mapping. The
	// config loader resolves it relative to the config file.
	OpenAPI string `yaml:"openapi"`
	// OpenAPIBasePath is prepended to every imported path, for APIs served
	// under a prefix (the path of the document's server URL), e.g. "/v1".
	OpenAPIBasePath string `yaml:"openapi_base_path"`
	// ActionType is the Cedar entity type of actions (default "Action").
	ActionType string `yaml:"action_type"`
}

// Route maps requests to a Cedar action and resource.
type Route struct {
	// Method is an HTTP method ("GET"), a list of methods, or "*" for any
	// method. Methods are uppercase and case-sensitive. A HEAD request
	// matches a GET route when no HEAD route exists for the same path.
	Method Methods `yaml:"method"`
	// Path is the path template: literal segments, "{name}" for exactly one
	// segment, "{name...}" (last only) for the rest of the path. See
	// docs/routes.md.
	Path string `yaml:"path"`
	// Action is the Cedar action id. Default: "METHOD /path", e.g.
	// "GET /todos/{id}", one action per method of the route.
	Action string `yaml:"action"`
	// Resource is the Cedar resource the request acts on.
	Resource Resource `yaml:"resource"`
	// Anonymous lets requests without a token reach the policy with an
	// anonymous principal; they are still decided, never waved through.
	Anonymous bool `yaml:"anonymous"`
	// Upstream names the upstream to forward to; empty means the default.
	Upstream string `yaml:"upstream"`

	// origin names where the route was defined, for error messages.
	origin string
}

// Resource says how to build the Cedar resource of a route.
//
// Defaults: with no type, the resource is Route::"<path template>" (and id
// must be empty). With a type but no id, the id is the last path parameter
// when the template ends with one ("/todos/{id}" → Todo::"<id>"), else the
// path template itself ("/todos" → TodoList::"/todos").
type Resource struct {
	// Type is the Cedar entity type, e.g. "Todo" or "App::Todo".
	Type string `yaml:"type"`
	// ID is a literal ("all"), a path parameter reference ("{id}"), or a
	// mix of both ("{org}/{id}"). A rest parameter {path...} is referenced
	// as "{path}".
	ID string `yaml:"id"`
}

// Methods is one HTTP method or a list of them. In YAML it is written as a
// string ("GET") or a sequence ([GET, HEAD]).
type Methods []string

// UnmarshalYAML accepts a string or a sequence of strings.
func (m *Methods) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*m = Methods{one}
		return nil
	}
	var many []string
	if err := unmarshal(&many); err != nil {
		return errors.New(`method: want a method ("GET"), a list ([GET, HEAD]) or "*"`)
	}
	*m = many
	return nil
}

// MarshalYAML writes a single method as a plain string.
func (m Methods) MarshalYAML() (any, error) {
	if len(m) == 1 {
		return m[0], nil
	}
	return []string(m), nil
}

// SetDefaults fills in defaults. Route defaults depend on each route's
// method and path and are applied when the table is compiled (see Route and
// Resource).
func (c *Config) SetDefaults() {
	if c.ActionType == "" {
		c.ActionType = DefaultActionType
	}
}

// Validate checks the configuration without reading the OpenAPI document:
// every route, template and resource, and conflicts between routes. Errors
// name the key, e.g. `routes[2].path: ...`.
func (c *Config) Validate() error {
	if c.OpenAPIBasePath != "" {
		if c.OpenAPI == "" {
			return errors.New("openapi_base_path: set, but openapi is not")
		}
		if err := checkBasePath(c.OpenAPIBasePath); err != nil {
			return fmt.Errorf("openapi_base_path: %w", err)
		}
	}
	_, err := Compile(*c, nil)
	return err
}

func checkBasePath(p string) error {
	if p == "" {
		return nil
	}
	if p == "/" || p[len(p)-1] == '/' {
		return errors.New(`must not end with "/" (write "/v1", not "/v1/")`)
	}
	if _, err := parseTemplate(p); err != nil {
		return err
	}
	return nil
}
