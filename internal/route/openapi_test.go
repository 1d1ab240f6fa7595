package route

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/getkin/kin-openapi/openapi3"
)

func TestLoadOpenAPI(t *testing.T) {
	routes, err := LoadOpenAPI(context.Background(), filepath.Join("testdata", "todo.openapi.yaml"), "")
	if err != nil {
		t.Fatalf("LoadOpenAPI: %v", err)
	}
	type row struct {
		method, path, action string
		res                  Resource
		anonymous            bool
	}
	want := []row{
		{"GET", "/files/{name}", "getFile", Resource{Type: "File"}, false},
		{"GET", "/healthz", "", Resource{}, true},
		{"GET", "/orgs/{org}/todos/{id}", "", Resource{Type: "App::Todo", ID: "{org}/{id}"}, false},
		{"GET", "/todos", "listTodos", Resource{Type: "TodoList", ID: "all"}, false},
		{"POST", "/todos", "createTodo", Resource{Type: "TodoList", ID: "all"}, false},
		{"DELETE", "/todos/{id}", "deleteTodo", Resource{Type: "Todo", ID: "{id}"}, false},
		{"GET", "/todos/{id}", "getTodo", Resource{Type: "Todo", ID: "{id}"}, false},
		{"PUT", "/todos/{id}", "updateTodo", Resource{Type: "Todo", ID: "{id}"}, false},
		{"GET", "/users/{userId}", "getUser", Resource{Type: "User", ID: "{userId}"}, false},
	}
	if len(routes) != len(want) {
		t.Fatalf("got %d routes, want %d: %+v", len(routes), len(want), routes)
	}
	for i, w := range want {
		r := routes[i]
		got := row{r.Method[0], r.Path, r.Action, r.Resource, r.Anonymous}
		if len(r.Method) != 1 || got != w {
			t.Errorf("route %d = %+v, want %+v", i, got, w)
		}
		if !strings.HasPrefix(r.origin, "todo.openapi.yaml paths[") {
			t.Errorf("route %d origin = %q", i, r.origin)
		}
	}
}

func TestOpenAPIRoutesMatch(t *testing.T) {
	tbl, err := New(context.Background(), Config{OpenAPI: filepath.Join("testdata", "todo.openapi.yaml")}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		name, method, path string
		action             string
		resource           types.EntityUID
		anonymous          bool
	}{
		{"the operationId names the action", "GET", "/todos/42", "getTodo", uid("Todo", "42"), false},
		{"path-item x-vigil-resource applies to every operation", "DELETE", "/todos/42", "deleteTodo", uid("Todo", "42"), false},
		{"a literal resource id is used as is", "POST", "/todos", "createTodo", uid("TodoList", "all"), false},
		{"operation x-vigil-resource is used", "GET", "/users/u-1", "getUser", uid("User", "u-1"), false},
		{"a resource id may combine parameters", "GET", "/orgs/acme/todos/7", "GET /orgs/{org}/todos/{id}", uid("App::Todo", "acme/7"), false},
		{"a typed resource defaults to the last parameter", "GET", "/files/a.txt", "getFile", uid("File", "a.txt"), false},
		{"without operationId the action is METHOD /path", "GET", "/healthz", "GET /healthz", uid("Route", "/healthz"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tbl.Match(tc.method, tc.path)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if m.Action != uid("Action", tc.action) || m.Resource != tc.resource || m.Route.Anonymous != tc.anonymous {
				t.Errorf("got action %v resource %v anonymous %v; want %s %v %v",
					m.Action, m.Resource, m.Route.Anonymous, tc.action, tc.resource, tc.anonymous)
			}
		})
	}
}

func TestOpenAPIFromJSON(t *testing.T) {
	tbl, err := New(context.Background(), Config{
		OpenAPI:         filepath.Join("testdata", "todo.openapi.json"),
		OpenAPIBasePath: "/api/v1",
	}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m, err := tbl.Match("GET", "/api/v1/todos/5")
	if err != nil {
		t.Fatal(err)
	}
	if m.Action != uid("Action", "getTodo") || m.Resource != uid("Todo", "5") || m.Template != "/api/v1/todos/{id}" {
		t.Errorf("got %+v", m)
	}
	m, err = tbl.Match("POST", "/api/v1/todos")
	if err != nil {
		t.Fatal(err)
	}
	if m.Action != uid("Action", "POST /api/v1/todos") || m.Resource != uid("Route", "/api/v1/todos") {
		t.Errorf("got %+v", m)
	}
	if _, err := tbl.Match("GET", "/todos/5"); !errors.Is(err, ErrNoRoute) {
		t.Errorf("a path without the base path matched: %v", err)
	}
}

func TestConfiguredRoutesReplaceImportedOnes(t *testing.T) {
	tbl, err := New(context.Background(), Config{
		OpenAPI: filepath.Join("testdata", "todo.openapi.yaml"),
		Routes: []Route{{
			Method: Methods{"GET"}, Path: "/todos/{todoId}", Action: "peek",
			Resource: Resource{Type: "Todo", ID: "{todoId}"}, Anonymous: true,
		}},
	}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m, err := tbl.Match("GET", "/todos/1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Action != uid("Action", "peek") || !m.Route.Anonymous {
		t.Errorf("GET matched %v, want the configured route", m.Action)
	}
	m, err = tbl.Match("DELETE", "/todos/1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Action != uid("Action", "deleteTodo") {
		t.Errorf("DELETE matched %v, want the imported route", m.Action)
	}
	if len(tbl.overridden) != 1 || !strings.Contains(tbl.overridden[0], "replaced by routes[0]") {
		t.Errorf("overridden = %q", tbl.overridden)
	}
}

func TestOpenAPIErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"a parameter inside a segment is refused", "partial-param.openapi.yaml", "whole segment"},
		{"an unknown x-vigil-resource key is refused", "bad-extension.openapi.yaml", `paths["/todos/{id}"].get.x-vigil-resource`},
		{"a Swagger 2.0 document is refused", "swagger2.yaml", "only OpenAPI 3.x"},
		{"conflicting paths are refused naming both", "conflict.openapi.yaml", `paths["/todos/{todoId}"].get (GET /todos/{todoId}) conflicts with conflict.openapi.yaml paths["/todos/{id}"].get`},
		{"a rest parameter in OpenAPI is refused", "rest.openapi.yaml", "no rest parameters"},
		{"a $ref outside the document's directory is refused", "refs/inner/api.openapi.yaml", "outside the OpenAPI document's directory"},
		{"a missing file is reported", "missing.yaml", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), Config{OpenAPI: filepath.Join("testdata", tc.file)}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestOpenAPILocalRefs(t *testing.T) {
	routes, err := LoadOpenAPI(context.Background(), filepath.Join("testdata", "refs", "local.openapi.yaml"), "")
	if err != nil {
		t.Fatalf("LoadOpenAPI: %v", err)
	}
	if len(routes) != 1 || routes[0].Action != "listTodos" {
		t.Fatalf("routes = %+v", routes)
	}
}

func TestOpenAPIRefusesRemoteRefs(t *testing.T) {
	read := localRefs(t.TempDir())
	for _, ref := range []string{"http://127.0.0.1:1/x.yaml", "https://example.com/x.yaml", "file://host/x.yaml"} {
		u, err := url.Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := read(nil, u); err == nil || !strings.Contains(err.Error(), "only files") {
			t.Errorf("ref %s: err = %v", ref, err)
		}
	}
}

func TestLoadOpenAPIHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadOpenAPI(ctx, filepath.Join("testdata", "todo.openapi.yaml"), ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestImportOpenAPIEdgeCases(t *testing.T) {
	t.Run("a nil document is an error", func(t *testing.T) {
		if _, err := ImportOpenAPI(nil, ""); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("a document without paths imports nothing", func(t *testing.T) {
		routes, err := ImportOpenAPI(&openapi3.T{OpenAPI: "3.0.3"}, "")
		if err != nil || len(routes) != 0 {
			t.Fatalf("routes = %v, err = %v", routes, err)
		}
	})
	t.Run("an invalid base path is an error", func(t *testing.T) {
		if _, err := ImportOpenAPI(&openapi3.T{OpenAPI: "3.0.3"}, "v1/"); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("x-vigil-anonymous must be a boolean", func(t *testing.T) {
		doc := &openapi3.T{OpenAPI: "3.0.3", Paths: openapi3.NewPaths(openapi3.WithPath("/a", &openapi3.PathItem{
			Get: &openapi3.Operation{Extensions: map[string]any{ExtAnonymous: "yes"}},
		}))}
		if _, err := ImportOpenAPI(doc, ""); err == nil || !strings.Contains(err.Error(), "true or false") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("x-vigil-resource needs a type", func(t *testing.T) {
		doc := &openapi3.T{OpenAPI: "3.0.3", Paths: openapi3.NewPaths(openapi3.WithPath("/a", &openapi3.PathItem{
			Extensions: map[string]any{ExtResource: map[string]any{"id": "x"}},
			Get:        &openapi3.Operation{},
		}))}
		if _, err := ImportOpenAPI(doc, ""); err == nil || !strings.Contains(err.Error(), "type is required") {
			t.Fatalf("err = %v", err)
		}
	})
}
