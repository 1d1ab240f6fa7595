package route

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// testRoutes is the route set most matching tests run against.
func testRoutes() []Route {
	return []Route{
		{Method: Methods{"GET"}, Path: "/todos", Resource: Resource{Type: "TodoList"}},
		{Method: Methods{"POST"}, Path: "/todos", Action: "createTodo"},
		{Method: Methods{"GET"}, Path: "/todos/{id}", Resource: Resource{Type: "Todo", ID: "{id}"}},
		{Method: Methods{"PUT", "PATCH"}, Path: "/todos/{id}", Resource: Resource{Type: "Todo"}},
		{Method: Methods{"GET"}, Path: "/todos/new", Action: "newTodoForm"},
		{Method: Methods{"GET"}, Path: "/todos/{id}/comments/{cid}", Resource: Resource{Type: "Comment", ID: "{id}:{cid}"}},
		{Method: Methods{"GET"}, Path: "/files/{path...}", Resource: Resource{Type: "File"}},
		{Method: Methods{"GET"}, Path: "/files/README", Action: "readme"},
		{Method: Methods{"*"}, Path: "/admin/{rest...}", Action: "admin"},
		{Method: Methods{"DELETE"}, Path: "/admin/{rest...}", Action: "adminDelete"},
		{Method: Methods{"GET"}, Path: "/dir/", Action: "dirIndex"},
		{Method: Methods{"GET"}, Path: "/", Action: "home"},
		{Method: Methods{"HEAD"}, Path: "/reports/{id}", Action: "headReport"},
		{Method: Methods{"GET"}, Path: "/reports/{id}", Action: "getReport"},
		{Method: Methods{"GET"}, Path: "/healthz", Anonymous: true, Upstream: "ops"},
		{Method: Methods{"GET"}, Path: "/p/lit/x", Action: "litX"},
		{Method: Methods{"GET"}, Path: "/p/{a}/y", Action: "paramY"},
		{Method: Methods{"GET"}, Path: "/sp%20ace", Action: "space"},
		{Method: Methods{"GET"}, Path: "/orgs/{org}", Resource: Resource{Type: "Org", ID: "fixed"}},
	}
}

func mustCompile(t testing.TB, routes []Route) *Table {
	t.Helper()
	tbl, err := Compile(Config{Routes: routes}, nil)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

func uid(typ, id string) types.EntityUID {
	return types.EntityUID{Type: types.EntityType(typ), ID: types.String(id)}
}

func TestMatch(t *testing.T) {
	tbl := mustCompile(t, testRoutes())
	tests := []struct {
		name     string
		method   string
		path     string
		template string
		action   string
		resource types.EntityUID
		params   map[string]string
	}{
		{"a collection route maps to its resource type with the template as id",
			"GET", "/todos", "/todos", "GET /todos", uid("TodoList", "/todos"), nil},
		{"an explicit action name is used as the action id",
			"POST", "/todos", "/todos", "createTodo", uid("Route", "/todos"), nil},
		{"a path parameter becomes the resource id",
			"GET", "/todos/42", "/todos/{id}", "GET /todos/{id}", uid("Todo", "42"), map[string]string{"id": "42"}},
		{"a typed resource without id defaults to the last parameter",
			"PATCH", "/todos/42", "/todos/{id}", "PATCH /todos/{id}", uid("Todo", "42"), map[string]string{"id": "42"}},
		{"each method of a method list gets its own default action",
			"PUT", "/todos/42", "/todos/{id}", "PUT /todos/{id}", uid("Todo", "42"), map[string]string{"id": "42"}},
		{"a literal segment beats a parameter",
			"GET", "/todos/new", "/todos/new", "newTodoForm", uid("Route", "/todos/new"), nil},
		{"a parameter still matches when the literal route lacks the method",
			"PUT", "/todos/new", "/todos/{id}", "PUT /todos/{id}", uid("Todo", "new"), map[string]string{"id": "new"}},
		{"percent-encoded segments are decoded once",
			"GET", "/todos/%41", "/todos/{id}", "GET /todos/{id}", uid("Todo", "A"), map[string]string{"id": "A"}},
		{"encoded UTF-8 is decoded",
			"GET", "/todos/%C3%A9t%C3%A9", "/todos/{id}", "GET /todos/{id}", uid("Todo", "été"), map[string]string{"id": "été"}},
		{"an encoded percent sign decodes to a literal percent",
			"GET", "/todos/100%25", "/todos/{id}", "GET /todos/{id}", uid("Todo", "100%"), map[string]string{"id": "100%"}},
		{"literal segments compare after decoding",
			"GET", "/t%6Fdos/7", "/todos/{id}", "GET /todos/{id}", uid("Todo", "7"), map[string]string{"id": "7"}},
		{"a template literal may be written percent-encoded",
			"GET", "/sp%20ace", "/sp%20ace", "space", uid("Route", "/sp%20ace"), nil},
		{"three dots are an ordinary segment",
			"GET", "/todos/...", "/todos/{id}", "GET /todos/{id}", uid("Todo", "..."), map[string]string{"id": "..."}},
		{"a resource id can interpolate several parameters",
			"GET", "/todos/1/comments/2", "/todos/{id}/comments/{cid}", "GET /todos/{id}/comments/{cid}",
			uid("Comment", "1:2"), map[string]string{"id": "1", "cid": "2"}},
		{"a literal resource id ignores the parameters",
			"GET", "/orgs/acme", "/orgs/{org}", "GET /orgs/{org}", uid("Org", "fixed"), map[string]string{"org": "acme"}},
		{"a rest parameter captures the remaining segments",
			"GET", "/files/a/b/c.txt", "/files/{path...}", "GET /files/{path...}", uid("File", "a/b/c.txt"), map[string]string{"path": "a/b/c.txt"}},
		{"a rest parameter keeps a trailing slash",
			"GET", "/files/a/", "/files/{path...}", "GET /files/{path...}", uid("File", "a/"), map[string]string{"path": "a/"}},
		{"a rest parameter may be empty after a trailing slash",
			"GET", "/files/", "/files/{path...}", "GET /files/{path...}", uid("File", ""), map[string]string{"path": ""}},
		{"a rest parameter is decoded",
			"GET", "/files/a%20b/c", "/files/{path...}", "GET /files/{path...}", uid("File", "a b/c"), map[string]string{"path": "a b/c"}},
		{"a literal beats a rest parameter",
			"GET", "/files/README", "/files/README", "readme", uid("Route", "/files/README"), nil},
		{"an exact method beats a star route on the same template",
			"DELETE", "/admin/users/1", "/admin/{rest...}", "adminDelete", uid("Route", "/admin/{rest...}"), map[string]string{"rest": "users/1"}},
		{"a star route accepts any method",
			"PROPFIND", "/admin/x", "/admin/{rest...}", "admin", uid("Route", "/admin/{rest...}"), map[string]string{"rest": "x"}},
		{"a template ending in a slash matches the trailing slash",
			"GET", "/dir/", "/dir/", "dirIndex", uid("Route", "/dir/"), nil},
		{"the root template matches the root path",
			"GET", "/", "/", "home", uid("Route", "/"), nil},
		{"HEAD falls back to the GET route",
			"HEAD", "/todos/9", "/todos/{id}", "GET /todos/{id}", uid("Todo", "9"), map[string]string{"id": "9"}},
		{"HEAD prefers a HEAD route",
			"HEAD", "/reports/3", "/reports/{id}", "headReport", uid("Route", "/reports/{id}"), map[string]string{"id": "3"}},
		{"GET on a template that also has HEAD uses GET",
			"GET", "/reports/3", "/reports/{id}", "getReport", uid("Route", "/reports/{id}"), map[string]string{"id": "3"}},
		{"matching backtracks from a literal dead end to a parameter",
			"GET", "/p/lit/y", "/p/{a}/y", "paramY", uid("Route", "/p/{a}/y"), map[string]string{"a": "lit"}},
		{"the literal branch wins when it matches fully",
			"GET", "/p/lit/x", "/p/lit/x", "litX", uid("Route", "/p/lit/x"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tbl.Match(tc.method, tc.path)
			if err != nil {
				t.Fatalf("Match(%q, %q): %v", tc.method, tc.path, err)
			}
			if m.Template != tc.template {
				t.Errorf("template = %q, want %q", m.Template, tc.template)
			}
			if want := uid("Action", tc.action); m.Action != want {
				t.Errorf("action = %v, want %v", m.Action, want)
			}
			if m.Resource != tc.resource {
				t.Errorf("resource = %v, want %v", m.Resource, tc.resource)
			}
			if !maps.Equal(m.Params, tc.params) {
				t.Errorf("params = %v, want %v", m.Params, tc.params)
			}
			if m.Route == nil || m.Route.Path != tc.template {
				t.Errorf("route = %+v, want the route with path %q", m.Route, tc.template)
			}
		})
	}
}

func TestMatchReturnsRouteSettings(t *testing.T) {
	tbl := mustCompile(t, testRoutes())
	m, err := tbl.Match("GET", "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Route.Anonymous || m.Route.Upstream != "ops" {
		t.Errorf("route = %+v, want anonymous with upstream ops", m.Route)
	}
}

func TestMatchRejectsUnsafePaths(t *testing.T) {
	// A catch-all route is configured so that a path that slipped through
	// the checks would match instead of failing with ErrNoRoute.
	routes := append(testRoutes(), Route{Method: Methods{"*"}, Path: "/{path...}", Action: "catchAll"})
	tbl := mustCompile(t, routes)
	tests := []struct {
		name, path, code string
	}{
		{"an encoded dot-dot segment is rejected", "/todos/%2e%2e/admin", CodeDotSegment},
		{"a mixed-case encoded dot-dot is rejected", "/todos/.%2E/admin", CodeDotSegment},
		{"a literal dot-dot segment is rejected", "/todos/../admin", CodeDotSegment},
		{"a literal dot segment is rejected", "/./todos", CodeDotSegment},
		{"a trailing dot-dot is rejected", "/todos/..", CodeDotSegment},
		{"an encoded slash inside dot-dot is rejected", "/todos/..%2fadmin", CodeEncodedSlash},
		{"an encoded slash is rejected", "/todos/%2F1", CodeEncodedSlash},
		{"a lowercase encoded slash is rejected", "/todos/a%2fb", CodeEncodedSlash},
		{"a leading double slash is rejected, not collapsed", "//admin", CodeEmptySegment},
		{"an inner double slash is rejected", "/todos//1", CodeEmptySegment},
		{"a NUL byte is rejected", "/todos/1%00", CodeControl},
		{"a raw control character is rejected", "/todos/\t1", CodeControl},
		{"an encoded DEL is rejected", "/todos/%7F", CodeControl},
		{"an encoded newline is rejected", "/todos/1%0d%0aX-Evil:1", CodeControl},
		{"a backslash is rejected", `/todos\1`, CodeBackslash},
		{"an encoded backslash is rejected", "/todos/%5c1", CodeEncodedBackslash},
		{"an invalid percent-encoding is rejected", "/todos/%zz", CodeBadPercent},
		{"a truncated percent-encoding is rejected", "/todos/%2", CodeBadPercent},
		{"a lone percent sign is rejected", "/todos/%", CodeBadPercent},
		{"an IIS-style %u escape is rejected", "/todos/%u002e", CodeBadPercent},
		{"double percent-encoding is rejected", "/todos/%252e%252e", CodeDoubleEncoding},
		{"double percent-encoding of a letter is rejected", "/%2561dmin", CodeDoubleEncoding},
		{"an overlong UTF-8 dot is rejected", "/todos/%c0%ae", CodeInvalidUTF8},
		{"a raw semicolon is rejected", "/admin;x=1", CodeSemicolon},
		{"an encoded semicolon is rejected", "/todos/..%3B", CodeSemicolon},
		{"a raw space is rejected", "/todos/1 2", CodeInvalidChar},
		{"a query string is rejected", "/todos/1?x=1", CodeInvalidChar},
		{"a fragment is rejected", "/todos/1#x", CodeInvalidChar},
		{"raw non-ASCII bytes are rejected", "/todos/é", CodeInvalidChar},
		{"a relative path is rejected", "todos/1", CodeNotAbsolute},
		{"an empty path is rejected", "", CodeNotAbsolute},
		{"an asterisk-form target is rejected", "*", CodeNotAbsolute},
		{"an absolute URL is rejected", "http://example.com/todos", CodeNotAbsolute},
		{"a path over 8 KiB is rejected", "/" + strings.Repeat("a", MaxPathBytes), CodeTooLong},
		{"a path with too many segments is rejected", strings.Repeat("/a", MaxSegments+1), CodeTooManySegments},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tbl.Match("GET", tc.path)
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("Match(%q) = %+v, %v; want ErrBadRequest", tc.path, m, err)
			}
			var bre *BadRequestError
			if !errors.As(err, &bre) || bre.Code != tc.code {
				t.Fatalf("Match(%q) error = %v (%+v), want code %q", tc.path, err, bre, tc.code)
			}
			if len(err.Error()) > 200 {
				t.Errorf("error message is %d bytes; it must not echo the path", len(err.Error()))
			}
		})
	}
}

func TestMatchAcceptsPathsAtTheLimits(t *testing.T) {
	tbl := mustCompile(t, []Route{{Method: Methods{"*"}, Path: "/{path...}"}})
	for name, p := range map[string]string{
		"a path of exactly 8 KiB matches":                  "/" + strings.Repeat("a", MaxPathBytes-1),
		"a path with exactly MaxSegments segments matches": strings.Repeat("/a", MaxSegments),
		"sub-delims, colon and at sign are allowed":        "/a!$&'()*+,=:@[]~-._",
	} {
		t.Run(name, func(t *testing.T) {
			m, err := tbl.Match("GET", p)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got := "/" + m.Params["path"]; got != p {
				t.Errorf("rest = %q, want %q", got, p)
			}
		})
	}
}

func TestMatchRejectsBadMethods(t *testing.T) {
	tbl := mustCompile(t, []Route{{Method: Methods{"*"}, Path: "/{path...}"}})
	for name, method := range map[string]string{
		"a lowercase method is rejected":      "get",
		"a mixed-case method is rejected":     "Delete",
		"an empty method is rejected":         "",
		"a method with a space is rejected":   "GET X",
		"a method with a digit is rejected":   "GET2",
		"an overlong method is rejected":      strings.Repeat("A", MaxMethodBytes+1),
		"a method with a NUL is rejected":     "GET\x00",
		"a method with non-ASCII is rejected": "GÉT",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tbl.Match(method, "/x")
			var bre *BadRequestError
			if !errors.As(err, &bre) || bre.Code != CodeBadMethod || !errors.Is(err, ErrBadRequest) {
				t.Fatalf("Match(%q) error = %v, want %s", method, err, CodeBadMethod)
			}
		})
	}
	t.Run("extension methods with dashes are accepted", func(t *testing.T) {
		if _, err := tbl.Match("VERSION-CONTROL", "/x"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMatchWithoutRoute(t *testing.T) {
	tbl := mustCompile(t, testRoutes())
	tests := []struct {
		name, method, path string
		allowed            []string
	}{
		{"a trailing slash does not match a template without one", "GET", "/todos/1/", nil},
		{"paths are case-sensitive", "GET", "/TODOS/1", nil},
		{"a template with a trailing slash needs the slash", "GET", "/dir", nil},
		{"an empty trailing segment does not fill a parameter", "GET", "/orgs/", nil},
		{"a rest parameter needs at least the slash after its prefix", "GET", "/files", nil},
		{"an unknown path has no route", "GET", "/nope", nil},
		{"a known path with another method lists the allowed methods", "DELETE", "/todos/1", []string{"GET", "HEAD", "PATCH", "PUT"}},
		{"allowed methods include HEAD for GET routes", "POST", "/healthz", []string{"GET", "HEAD"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tbl.Match(tc.method, tc.path)
			if !errors.Is(err, ErrNoRoute) {
				t.Fatalf("Match(%q, %q) = %+v, %v; want ErrNoRoute", tc.method, tc.path, m, err)
			}
			var nre *NoRouteError
			if !errors.As(err, &nre) {
				t.Fatalf("error %T is not a *NoRouteError", err)
			}
			if strings.Join(nre.Allowed, ",") != strings.Join(tc.allowed, ",") {
				t.Errorf("allowed = %v, want %v", nre.Allowed, tc.allowed)
			}
			if got := errors.Is(err, ErrMethodNotAllowed); got != (len(tc.allowed) > 0) {
				t.Errorf("errors.Is(err, ErrMethodNotAllowed) = %v", got)
			}
		})
	}
	t.Run("a nil table matches nothing", func(t *testing.T) {
		var nilTable *Table
		if _, err := nilTable.Match("GET", "/todos"); !errors.Is(err, ErrNoRoute) {
			t.Fatalf("err = %v, want ErrNoRoute", err)
		}
	})
	t.Run("an empty table matches nothing", func(t *testing.T) {
		if _, err := mustCompile(t, nil).Match("GET", "/"); !errors.Is(err, ErrNoRoute) {
			t.Fatalf("err = %v, want ErrNoRoute", err)
		}
	})
}

func TestMatchParamsNeverContainSlash(t *testing.T) {
	tbl := mustCompile(t, testRoutes())
	m, err := tbl.Match("GET", "/todos/a%20b/comments/c")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range m.Params {
		if strings.Contains(v, "/") {
			t.Errorf("param %s = %q contains a slash", k, v)
		}
	}
}

func TestCompileConflicts(t *testing.T) {
	get := Methods{"GET"}
	tests := []struct {
		name   string
		routes []Route
		want   []string // substrings of the error; empty means no conflict
	}{
		{"parameters with different names on the same shape conflict",
			[]Route{{Method: get, Path: "/todos/{id}"}, {Method: get, Path: "/todos/{key}"}},
			[]string{"routes[1] (GET /todos/{key})", "routes[0] (GET /todos/{id})", "conflicts"}},
		{"the same template twice conflicts",
			[]Route{{Method: get, Path: "/a"}, {Method: get, Path: "/a"}},
			[]string{"routes[1]", "routes[0]"}},
		{"overlapping method lists conflict",
			[]Route{{Method: Methods{"GET", "POST"}, Path: "/a/{x}"}, {Method: Methods{"POST"}, Path: "/a/{y}"}},
			[]string{"routes[1] (POST /a/{y})", "routes[0] (POST /a/{x})"}},
		{"two star routes on one shape conflict",
			[]Route{{Method: Methods{"*"}, Path: "/{p...}"}, {Method: Methods{"*"}, Path: "/{q...}"}},
			[]string{"routes[1] (* /{q...})", "routes[0] (* /{p...})"}},
		{"literals that decode to the same segment conflict",
			[]Route{{Method: get, Path: "/a"}, {Method: get, Path: "/%61"}},
			[]string{"routes[1]", "routes[0]"}},
		{"a literal and a parameter do not conflict",
			[]Route{{Method: get, Path: "/todos/new"}, {Method: get, Path: "/todos/{id}"}}, nil},
		{"an exact method and a star route do not conflict",
			[]Route{{Method: get, Path: "/a"}, {Method: Methods{"*"}, Path: "/a"}}, nil},
		{"GET and HEAD routes do not conflict",
			[]Route{{Method: get, Path: "/a"}, {Method: Methods{"HEAD"}, Path: "/a"}}, nil},
		{"a parameter and a rest parameter do not conflict",
			[]Route{{Method: get, Path: "/a/{x}"}, {Method: get, Path: "/a/{x...}"}}, nil},
		{"a template with and without a trailing slash do not conflict",
			[]Route{{Method: get, Path: "/a"}, {Method: get, Path: "/a/"}}, nil},
		{"rest routes at different depths do not conflict",
			[]Route{{Method: get, Path: "/{p...}"}, {Method: get, Path: "/a/{p...}"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(Config{Routes: tc.routes}, nil)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Compile succeeded, want a conflict")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCompileIsDeterministic(t *testing.T) {
	// The same request must resolve to the same route however the routes
	// are ordered in the configuration.
	routes := testRoutes()
	reversed := make([]Route, len(routes))
	for i, r := range routes {
		reversed[len(routes)-1-i] = r
	}
	a, b := mustCompile(t, routes), mustCompile(t, reversed)
	for _, p := range []string{"/todos/new", "/todos/1", "/p/lit/y", "/p/lit/x", "/files/README", "/files/x", "/admin/a"} {
		for _, method := range []string{"GET", "PUT", "DELETE", "HEAD"} {
			ma, errA := a.Match(method, p)
			mb, errB := b.Match(method, p)
			if (errA == nil) != (errB == nil) || ma.Action != mb.Action || ma.Template != mb.Template {
				t.Errorf("%s %s: %v/%v vs %v/%v", method, p, ma.Action, errA, mb.Action, errB)
			}
		}
	}
}

func TestRoutesAndActions(t *testing.T) {
	tbl := mustCompile(t, []Route{
		{Method: Methods{"GET", "HEAD"}, Path: "/a", Action: "read"},
		{Method: Methods{"GET"}, Path: "/b", Action: "read", Anonymous: true, Upstream: "u"},
		{Method: Methods{"DELETE"}, Path: "/b/{id}", Resource: Resource{Type: "B"}},
	})
	got := tbl.Routes()
	want := []RouteInfo{
		{Method: "GET", Template: "/a", Action: uid("Action", "read"), ResourceType: "Route", Origin: "routes[0]"},
		{Method: "HEAD", Template: "/a", Action: uid("Action", "read"), ResourceType: "Route", Origin: "routes[0]"},
		{Method: "GET", Template: "/b", Action: uid("Action", "read"), ResourceType: "Route", Anonymous: true, Upstream: "u", Origin: "routes[1]"},
		{Method: "DELETE", Template: "/b/{id}", Action: uid("Action", "DELETE /b/{id}"), ResourceType: "B", Origin: "routes[2]"},
	}
	if len(got) != len(want) {
		t.Fatalf("Routes() = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Routes()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	acts := tbl.Actions()
	if len(acts) != 2 || acts[0] != uid("Action", "DELETE /b/{id}") || acts[1] != uid("Action", "read") {
		t.Errorf("Actions() = %v", acts)
	}
}

func TestCustomActionType(t *testing.T) {
	tbl, err := Compile(Config{ActionType: "App::Action", Routes: []Route{{Method: Methods{"GET"}, Path: "/a"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tbl.Match("GET", "/a")
	if err != nil {
		t.Fatal(err)
	}
	if want := uid("App::Action", "GET /a"); m.Action != want {
		t.Errorf("action = %v, want %v", m.Action, want)
	}
}

func TestMatchDoesNotShareParams(t *testing.T) {
	tbl := mustCompile(t, testRoutes())
	m1, _ := tbl.Match("GET", "/todos/1")
	m1.Params["id"] = "changed"
	m2, _ := tbl.Match("GET", "/todos/1")
	if m2.Params["id"] != "1" {
		t.Fatalf("params leaked between matches: %v", m2.Params)
	}
}
