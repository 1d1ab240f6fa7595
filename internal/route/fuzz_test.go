package route

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds are the tricky paths of the unit tests plus a few valid ones.
var fuzzSeeds = []string{
	"/", "/todos", "/todos/1", "/todos/%41", "/todos/1/", "/TODOS/1", "//admin",
	"/todos/%2e%2e/admin", "/todos/..%2fadmin", "/todos/%2F1", "/todos/1%00", "/todos/%zz",
	"/todos/%252e", "/todos/%c0%ae", "/admin;x=1", `/a\b`, "/files/a/b/", "/files/",
	"/todos/1/comments/2", "/p/lit/y", "/t%6Fdos/1", "/%", "/%2", "*", "",
}

func FuzzMatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add("GET", s)
	}
	f.Add("HEAD", "/reports/1")
	f.Add("get", "/todos")
	plain := mustCompile(f, testRoutes())
	catchAll := mustCompile(f, append(testRoutes(), Route{Method: Methods{"*"}, Path: "/{path...}"}))
	f.Fuzz(func(t *testing.T, method, path string) {
		for _, tbl := range []*Table{plain, catchAll} {
			m, err := tbl.Match(method, path)
			if err != nil {
				if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrNoRoute) {
					t.Fatalf("Match(%q, %q): unexpected error kind %v", method, path, err)
				}
				continue
			}
			rest := ""
			if i := strings.Index(m.Template, "...}"); i >= 0 {
				rest = m.Template[strings.LastIndexByte(m.Template, '{')+1 : i]
			}
			for name, v := range m.Params {
				if name != rest && (strings.Contains(v, "/") || v == "") {
					t.Fatalf("Match(%q, %q): param %s = %q", method, path, name, v)
				}
				if !utf8.ValidString(v) || strings.ContainsAny(v, "\\;\x00") || v == "." || v == ".." {
					t.Fatalf("Match(%q, %q): unsafe param %s = %q", method, path, name, v)
				}
				for _, seg := range strings.Split(v, "/") {
					if seg == "." || seg == ".." {
						t.Fatalf("Match(%q, %q): dot segment in %s = %q", method, path, name, v)
					}
				}
			}
			if m.Route == nil || m.Action.ID == "" || m.Resource.Type == "" {
				t.Fatalf("Match(%q, %q): incomplete match %+v", method, path, m)
			}
		}
	})
}

// FuzzTemplate checks that template parsing never panics and that a
// template without parameters matches itself as a request path.
func FuzzTemplate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "")
	}
	f.Add("/a/{x}/{y...}", "{x}:{y}")
	f.Add("/a/{x", "{")
	f.Add("/{", "}")
	f.Fuzz(func(t *testing.T, path, id string) {
		r := Route{Method: Methods{"GET"}, Path: path}
		if id != "" {
			r.Resource = Resource{Type: "T", ID: id}
		}
		tbl, err := Compile(Config{Routes: []Route{r}}, nil)
		if err != nil || strings.ContainsAny(path, "{}") {
			return
		}
		if _, err := tbl.Match("GET", path); err != nil {
			t.Fatalf("template %q does not match itself: %v", path, err)
		}
	})
}
