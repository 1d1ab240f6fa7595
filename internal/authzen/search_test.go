package authzen

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type searchResponse struct {
	Page struct {
		NextToken *string `json:"next_token"`
		Count     int     `json:"count"`
		Total     *int    `json:"total"`
	} `json:"page"`
	Results []map[string]string `json:"results"`
}

func decodeSearch(t *testing.T, body []byte) searchResponse {
	t.Helper()
	var r searchResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if r.Page.NextToken == nil || r.Results == nil {
		t.Fatalf("page.next_token and results are required: %s", body)
	}
	return r
}

func TestSearch(t *testing.T) {
	h := newTodoHandler(t, Options{})
	user := func(pid string) string { return `{"type":"user","id":"` + pid + `"}` }
	ownTodo := `{"type":"todo","id":"t1","properties":{"ownerID":"morty@the-citadel.com"}}`
	tests := []struct {
		name string
		path string
		body string
		want string
	}{
		{"subject search returns the users allowed, sorted by id", PathSearchSubject,
			`{"subject":{"type":"user"},"action":{"name":"can_update_todo"},"resource":` + ownTodo + `}`,
			`{"page":{"next_token":"","count":2,"total":2},"results":[` + user(pidRick) + `,` + user(pidMorty) + `]}`},
		{"the searched subject's id is ignored", PathSearchSubject,
			`{"subject":{"type":"user","id":42,"properties":"x"},"action":{"name":"can_update_todo"},"resource":` + ownTodo + `}`,
			`{"page":{"next_token":"","count":2,"total":2},"results":[` + user(pidRick) + `,` + user(pidMorty) + `]}`},
		{"subject search over roles follows the policy", PathSearchSubject,
			`{"subject":{"type":"Role"},"action":{"name":"can_create_todo"},"resource":{"type":"todo","id":"x"}}`,
			`{"page":{"next_token":"","count":0,"total":0},"results":[]}`},
		{"resource search returns every readable user", PathSearchResource,
			`{"subject":` + user(pidJerry) + `,"action":{"name":"can_read_user"},"resource":{"type":"user"}}`,
			`{"page":{"next_token":"","count":5,"total":5},"results":[` + user(pidRick) + `,` + user(pidMorty) + `,` + user(pidSummer) + `,` + user(pidBeth) + `,` + user(pidJerry) + `]}`},
		{"resource search over an empty type returns no results", PathSearchResource,
			`{"subject":` + user(pidRick) + `,"action":{"name":"can_read_todos"},"resource":{"type":"todo"}}`,
			`{"page":{"next_token":"","count":0,"total":0},"results":[]}`},
		{"action search returns an editor's actions on their own todo", PathSearchAction,
			`{"subject":` + user(pidMorty) + `,"resource":` + ownTodo + `}`,
			`{"page":{"next_token":"","count":4,"total":4},"results":[{"name":"can_create_todo"},{"name":"can_delete_todo"},{"name":"can_read_todos"},{"name":"can_update_todo"}]}`},
		{"action search ignores a sent action", PathSearchAction,
			`{"subject":` + user(pidBeth) + `,"action":{"name":"x"},"resource":{"type":"todo","id":"t","properties":{"ownerID":"beth@the-smiths.com"}}}`,
			`{"page":{"next_token":"","count":1,"total":1},"results":[{"name":"can_read_todos"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(h, tt.path, tt.body)
			if rec.Code != 200 || rec.Body.String() != tt.want {
				t.Fatalf("got %d\n %s\nwant\n %s", rec.Code, rec.Body, tt.want)
			}
		})
	}

	bad := []struct {
		name, path, body, want string
	}{
		{"a subject search without subject is rejected", PathSearchSubject, `{"action":{"name":"a"},"resource":{"type":"todo","id":"x"}}`, "subject: is required: give the subject type"},
		{"a subject search without a subject type is rejected", PathSearchSubject, `{"subject":{"id":"x"},"action":{"name":"a"},"resource":{"type":"todo","id":"x"}}`, "subject.type: is required"},
		{"a resource search needs a full subject", PathSearchResource, `{"subject":{"type":"user"},"action":{"name":"a"},"resource":{"type":"todo"}}`, "subject.id: is required"},
		{"an action search needs a resource", PathSearchAction, `{"subject":{"type":"user","id":"x"}}`, "resource: is required"},
		{"a subject search needs an action", PathSearchSubject, `{"subject":{"type":"user"},"resource":{"type":"todo","id":"x"}}`, "action: is required"},
		{"a non-object page is rejected", PathSearchResource, `{"subject":{"type":"user","id":"x"},"action":{"name":"a"},"resource":{"type":"todo"},"page":1}`, "page: must be an object"},
		{"a non-string token is rejected", PathSearchResource, `{"subject":{"type":"user","id":"x"},"action":{"name":"a"},"resource":{"type":"todo"},"page":{"token":1}}`, "page.token: must be a string"},
		{"a zero limit is rejected", PathSearchResource, `{"subject":{"type":"user","id":"x"},"action":{"name":"a"},"resource":{"type":"todo"},"page":{"limit":0}}`, "page.limit: must be a positive integer"},
		{"a fractional limit is rejected", PathSearchResource, `{"subject":{"type":"user","id":"x"},"action":{"name":"a"},"resource":{"type":"todo"},"page":{"limit":1.5}}`, "page.limit: must be a positive integer"},
		{"a string limit is rejected", PathSearchResource, `{"subject":{"type":"user","id":"x"},"action":{"name":"a"},"resource":{"type":"todo"},"page":{"limit":"2"}}`, "page.limit: must be a positive integer"},
		{"a non-object context is rejected", PathSearchAction, `{"subject":{"type":"user","id":"x"},"resource":{"type":"todo","id":"x"},"context":"x"}`, "context: must be an object"},
		{"a garbage token is rejected", PathSearchResource, `{"subject":{"type":"user","id":"x"},"action":{"name":"a"},"resource":{"type":"todo"},"page":{"token":"not-a-token"}}`, "page.token: not a token this PDP issued"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(h, tt.path, tt.body)
			if rec.Code != 400 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if p := decodeProblem(t, rec); !strings.Contains(p.Detail, tt.want) {
				t.Fatalf("detail %q, want %q", p.Detail, tt.want)
			}
		})
	}
}

// pageThrough follows next_token until the last page and returns every
// result id and the pages' counts.
func pageThrough(t *testing.T, h *Handler, path string, body func(token string) string) ([]string, []int, int) {
	t.Helper()
	var ids []string
	var counts []int
	token := ""
	for range 100 {
		rec := post(h, path, body(token))
		if rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		r := decodeSearch(t, rec.Body.Bytes())
		if r.Page.Count != len(r.Results) {
			t.Fatalf("count %d but %d results", r.Page.Count, len(r.Results))
		}
		counts = append(counts, r.Page.Count)
		for _, res := range r.Results {
			ids = append(ids, res["id"]+res["name"])
		}
		if *r.Page.NextToken == "" {
			if r.Page.Total == nil || *r.Page.Total != len(ids) {
				t.Fatalf("last page total %v, want %d", r.Page.Total, len(ids))
			}
			return ids, counts, *r.Page.Total
		}
		if r.Page.Total != nil {
			t.Fatalf("total %d on a page that is not the last", *r.Page.Total)
		}
		token = *r.Page.NextToken
	}
	t.Fatal("pagination did not end")
	return nil, nil, 0
}

func TestSearchPagination(t *testing.T) {
	views := viewsOf(todoSnapshot(t))
	allUsers := []string{pidRick, pidMorty, pidSummer, pidBeth, pidJerry}
	readUsers := func(limit int) func(string) string {
		return func(token string) string {
			return fmt.Sprintf(`{"subject":{"type":"user","id":"%s"},"action":{"name":"can_read_user"},"resource":{"type":"user"},"page":{"token":%q,"limit":%d}}`, pidBeth, token, limit)
		}
	}

	t.Run("pages of two return every result once, in order", func(t *testing.T) {
		h := New(Options{Views: views.View})
		ids, counts, total := pageThrough(t, h, PathSearchResource, readUsers(2))
		if !slices.Equal(ids, allUsers) || !slices.Equal(counts, []int{2, 2, 1}) || total != 5 {
			t.Fatalf("ids %v counts %v total %d", ids, counts, total)
		}
	})
	t.Run("a limit above the maximum is lowered to it", func(t *testing.T) {
		h := New(Options{Views: views.View, Limits: Limits{MaxPageSize: 3}})
		_, counts, _ := pageThrough(t, h, PathSearchResource, readUsers(100))
		if !slices.Equal(counts, []int{3, 2}) {
			t.Fatalf("counts %v", counts)
		}
	})
	t.Run("the default page size applies without a limit", func(t *testing.T) {
		h := New(Options{Views: views.View, Limits: Limits{DefaultPageSize: 4}})
		rec := post(h, PathSearchResource, `{"subject":{"type":"user","id":"`+pidBeth+`"},"action":{"name":"can_read_user"},"resource":{"type":"user"}}`)
		if r := decodeSearch(t, rec.Body.Bytes()); r.Page.Count != 4 || *r.Page.NextToken == "" {
			t.Fatalf("%s", rec.Body)
		}
	})
	t.Run("the scan budget yields short pages that still cover everything", func(t *testing.T) {
		h := New(Options{Views: views.View, Limits: Limits{MaxSearchScan: 2}})
		body := func(token string) string {
			return fmt.Sprintf(`{"subject":{"type":"user"},"action":{"name":"can_create_todo"},"resource":{"type":"todo","id":"t"},"page":{"token":%q}}`, token)
		}
		ids, counts, total := pageThrough(t, h, PathSearchSubject, body)
		if !slices.Equal(ids, []string{pidRick, pidMorty, pidSummer}) || !slices.Equal(counts, []int{2, 1, 0}) || total != 3 {
			t.Fatalf("ids %v counts %v total %d", ids, counts, total)
		}
	})

	h := New(Options{Views: views.View})
	first := post(h, PathSearchResource, readUsers(2)(""))
	token := *decodeSearch(t, first.Body.Bytes()).Page.NextToken

	t.Run("a follow-up may change only the page", func(t *testing.T) {
		if rec := post(h, PathSearchResource, readUsers(3)(token)); rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		reordered := fmt.Sprintf(`{"page":{"token":%q},"resource":{"type":"user","id":"ignored"},"extra":1,"action":{"name":"can_read_user"},"subject":{"id":"%s","type":"user"}}`, token, pidBeth)
		if rec := post(h, PathSearchResource, reordered); rec.Code != 200 {
			t.Fatalf("reordered members and an ignored id must not matter: %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("a tampered token is rejected", func(t *testing.T) {
		for i := range token {
			c := byte('A')
			if token[i] == 'A' {
				c = 'B'
			}
			tampered := token[:i] + string(c) + token[i+1:]
			rec := post(h, PathSearchResource, readUsers(2)(tampered))
			if rec.Code != 400 {
				t.Fatalf("tampering at %d accepted: %s", i, rec.Body)
			}
		}
		if rec := post(h, PathSearchResource, readUsers(2)(token+"AA")); rec.Code != 400 {
			t.Fatalf("extended token accepted: %s", rec.Body)
		}
	})
	t.Run("a token used with different values is rejected", func(t *testing.T) {
		other := fmt.Sprintf(`{"subject":{"type":"user","id":"%s"},"action":{"name":"can_read_user"},"resource":{"type":"user"},"page":{"token":%q}}`, pidRick, token)
		rec := post(h, PathSearchResource, other)
		if p := decodeProblem(t, rec); rec.Code != 400 || !strings.Contains(p.Detail, "was issued for a different search") {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		withContext := strings.Replace(readUsers(2)(token), `"page"`, `"context":{"a":1},"page"`, 1)
		if rec := post(h, PathSearchResource, withContext); rec.Code != 400 {
			t.Fatalf("added context accepted: %s", rec.Body)
		}
	})
	t.Run("a token from another search kind is rejected", func(t *testing.T) {
		body := fmt.Sprintf(`{"subject":{"type":"user","id":"%s"},"action":{"name":"can_read_user"},"resource":{"type":"user"},"page":{"token":%q}}`, pidBeth, token)
		if rec := post(h, PathSearchSubject, body); rec.Code != 400 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
	t.Run("a token from an older policy version is rejected", func(t *testing.T) {
		views := viewsOf(todoSnapshot(t))
		h := New(Options{Views: views.View})
		first := post(h, PathSearchResource, readUsers(2)(""))
		token := *decodeSearch(t, first.Body.Bytes()).Page.NextToken
		views.p.Store(compileDir(t, filepath.Join(repoRoot(t), "internal", "authzen", "testdata", "todo-v2")))
		rec := post(h, PathSearchResource, readUsers(2)(token))
		if p := decodeProblem(t, rec); rec.Code != 400 || !strings.Contains(p.Detail, "policy set changed") {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
	t.Run("explain adds the policy version", func(t *testing.T) {
		rec := post(h, PathSearchResource, readUsers(2)(""), HeaderExplain, "true")
		var r struct {
			Context struct {
				Vigil struct {
					PolicyVersion string `json:"policy_version"`
					Scanned       int    `json:"scanned"`
				} `json:"vigil"`
			} `json:"context"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Context.Vigil.PolicyVersion == "" || r.Context.Vigil.Scanned != 2 {
			t.Fatalf("%v %s", err, rec.Body)
		}
	})
}
