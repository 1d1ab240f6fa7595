package authzen

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/engine"
)

func rickUpdates(owner string) string {
	return `{"subject":{"type":"user","id":"` + pidMorty + `"},"action":{"name":"can_update_todo"},` +
		`"resource":{"type":"todo","id":"t1","properties":{"ownerID":"` + owner + `"}}}`
}

func TestEvaluationProtocol(t *testing.T) {
	h := newTodoHandler(t, Options{})
	okSubject := `"subject":{"type":"user","id":"` + pidRick + `"}`
	okAction := `"action":{"name":"can_read_todos"}`
	okResource := `"resource":{"type":"todo","id":"todo-1"}`
	ok := func(extra string) string { return "{" + okSubject + "," + okAction + "," + okResource + extra + "}" }
	withContext := func(ctx string) string { return ok(`,"context":` + ctx) }

	tests := []struct {
		name   string
		body   string
		status int
		want   string // exact body for 200, substring of detail otherwise
	}{
		{"an allowed request answers exactly decision true", ok(""), 200, `{"decision":true}`},
		{"an editor updating their own todo is allowed", rickUpdates("morty@the-citadel.com"), 200, `{"decision":true}`},
		{"an editor updating another's todo is denied with 200", rickUpdates("rick@the-citadel.com"), 200, `{"decision":false}`},
		{"unknown top-level fields are ignored", ok(`,"extra":{"a":[1,2]},"evaluations":5`), 200, `{"decision":true}`},
		{"null context and null properties count as absent", `{"subject":{"type":"user","id":"` + pidRick + `","properties":null},` + okAction + `,` + okResource + `,"context":null}`, 200, `{"decision":true}`},
		{"an unknown entity type is a deny, not an error", `{"subject":{"type":"Spaceship","id":"x"},` + okAction + `,` + okResource + `}`, 200, `{"decision":false}`},
		{"an unknown subject id is a deny, not an error", `{"subject":{"type":"user","id":"nobody"},"action":{"name":"can_create_todo"},` + okResource + `}`, 200, `{"decision":false}`},
		{"an unknown action is a deny, not an error", `{` + okSubject + `,"action":{"name":"launch"},` + okResource + `}`, 200, `{"decision":false}`},
		{"a context with every value kind converts", withContext(`{"s":"x","b":true,"n":-3,"d":1.25,"e":2e3,"z":-0.0,"a":[1,1,null],"o":{"k":null},` +
			`"ent":{"__entity":{"type":"user","id":"u"}},"ip":{"__extn":{"fn":"ip","arg":"10.0.0.0/8"}},` +
			`"dec":{"__extn":{"fn":"decimal","arg":"1.5"}},"dt":{"__extn":{"fn":"datetime","arg":"2025-01-01"}},"du":{"__extn":{"fn":"duration","arg":"1h"}}}`), 200, `{"decision":true}`},

		{"an empty body is rejected", ``, 400, "request body is empty"},
		{"truncated JSON is rejected", `{"subject":{"type":"user"`, 400, "truncated"},
		{"malformed JSON is rejected", `{"subject": }`, 400, "not valid JSON"},
		{"a JSON array body is rejected", `[]`, 400, "must be a JSON object, got array"},
		{"data after the object is rejected", ok("") + ` {}`, 400, "data after the JSON value"},
		{"duplicate member names are rejected", `{"subject":{"type":"user","type":"user","id":"x"}}`, 400, "duplicate"},
		{"invalid UTF-8 is rejected", "{\"subject\":{\"type\":\"user\",\"id\":\"\xff\"}}", 400, "UTF-8"},
		{"a missing subject is named", `{` + okAction + `,` + okResource + `}`, 400, "subject: is required"},
		{"a missing action is named", `{` + okSubject + `,` + okResource + `}`, 400, "action: is required"},
		{"a missing resource is named", `{` + okSubject + `,` + okAction + `}`, 400, "resource: is required"},
		{"a numeric subject id is named", `{"subject":{"type":"user","id":42},` + okAction + `,` + okResource + `}`, 400, "subject.id: must be a string, got number"},
		{"an empty subject id is named", `{"subject":{"type":"user","id":""},` + okAction + `,` + okResource + `}`, 400, "subject.id: must not be empty"},
		{"a missing subject type is named", `{"subject":{"id":"x"},` + okAction + `,` + okResource + `}`, 400, "subject.type: is required"},
		{"an invalid entity type name is named", `{"subject":{"type":"no such type","id":"x"},` + okAction + `,` + okResource + `}`, 400, `subject.type: "no such type" is not a valid Cedar entity type name`},
		{"a reserved word as type is rejected", `{` + okSubject + `,` + okAction + `,"resource":{"type":"if","id":"x"}}`, 400, "resource.type"},
		{"a string subject is named", `{"subject":"rick",` + okAction + `,` + okResource + `}`, 400, "subject: must be an object"},
		{"a numeric action name is named", `{` + okSubject + `,"action":{"name":1},` + okResource + `}`, 400, "action.name: must be a string, got number"},
		{"non-object properties are named", `{"subject":{"type":"user","id":"x","properties":[1]},` + okAction + `,` + okResource + `}`, 400, "subject.properties: must be an object, got array"},
		{"a non-object context is named", withContext(`[1]`), 400, "context: must be an object, got array"},
		{"a number with five decimals is named", withContext(`{"cart":{"price":1.23456}}`), 400, "context.cart.price: number 1.23456 has more than 4 decimal places"},
		{"a tiny exponent number is rejected", withContext(`{"p":1e-5}`), 400, "context.p: number 1e-5 has more than 4 decimal places"},
		{"a huge integer is named", withContext(`{"n":99999999999999999999}`), 400, "context.n: integer 99999999999999999999 is outside the range"},
		{"a huge exponent is named", withContext(`{"n":1e400}`), 400, "context.n: integer 1e400 is outside the range"},
		{"a decimal beyond Cedar's range is named", withContext(`{"n":1000000000000000.5}`), 400, "outside the range of a Cedar decimal"},
		{"an array element path is named", withContext(`{"list":[1,"a",0.123456]}`), 400, "context.list[2]: number"},
		{"odd keys are quoted in paths", withContext(`{"a b":{"c":1e-9}}`), 400, `context["a b"].c`},
		{"an entity reference with a bad type is named", withContext(`{"owner":{"__entity":{"type":"1x","id":"a"}}}`), 400, "context.owner.__entity.type"},
		{"an entity reference with extra members is rejected", withContext(`{"owner":{"__entity":{"type":"user","id":"a"},"x":1}}`), 400, `context.owner: an object with a "__entity" member must have no other members`},
		{"an unknown extension function is named", withContext(`{"x":{"__extn":{"fn":"sqrt","arg":"4"}}}`), 400, `context.x.__extn.fn: unknown extension function "sqrt"`},
		{"a bad extension argument is named", withContext(`{"x":{"__extn":{"fn":"ip","arg":"not-an-ip"}}}`), 400, `context.x.__extn.arg: "not-an-ip" is not a valid ip`},
		{"a context that is an entity reference is rejected", withContext(`{"__entity":{"type":"user","id":"a"}}`), 400, "context.__entity: must hold attributes"},
		{"action properties clash with context.action", `{` + okSubject + `,"action":{"name":"can_read_todos","properties":{"m":"GET"}},` + okResource + `,"context":{"action":1}}`, 400, "action.properties: conflicts with context.action"},
		{"nesting deeper than the limit is rejected", withContext(strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)), 400, "deeper than 32 levels"},
		{"deep arrays are rejected too", withContext(`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`), 400, "deeper than 32 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(h, PathEvaluation, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 200 {
				if rec.Body.String() != tt.want {
					t.Fatalf("body %s, want %s", rec.Body, tt.want)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				return
			}
			p := decodeProblem(t, rec)
			if p.Status != tt.status || !strings.Contains(p.Detail, tt.want) {
				t.Fatalf("problem %+v, want status %d and detail containing %q", p, tt.status, tt.want)
			}
		})
	}
}

type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder) problemDoc {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("error Content-Type %q, want application/problem+json; body %s", ct, rec.Body)
	}
	var p problemDoc
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, rec.Body)
	}
	if p.Type != "about:blank" || p.Title != http.StatusText(rec.Code) {
		t.Fatalf("problem %+v does not follow RFC 9457", p)
	}
	return p
}

func TestTransport(t *testing.T) {
	h := newTodoHandler(t, Options{Limits: Limits{MaxBodyBytes: 2048}})
	body := rickUpdates("morty@the-citadel.com")
	send := func(method, path, ctype, body string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	t.Run("GET on an API endpoint is 405 with Allow: POST", func(t *testing.T) {
		for _, p := range h.Paths()[:5] {
			rec := send(http.MethodGet, p, "", "")
			if rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
				t.Fatalf("%s: %d Allow=%q", p, rec.Code, rec.Header().Get("Allow"))
			}
			decodeProblem(t, rec)
		}
	})
	t.Run("POST on the metadata is 405 with Allow: GET, HEAD", func(t *testing.T) {
		rec := send(http.MethodPost, PathMetadata, "application/json", "{}")
		if rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Fatalf("%d Allow=%q", rec.Code, rec.Header().Get("Allow"))
		}
	})
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "application/jsonx"} {
		t.Run("Content-Type "+strconvQuote(ct)+" is 415", func(t *testing.T) {
			rec := send(http.MethodPost, PathEvaluation, ct, body)
			if rec.Code != 415 {
				t.Fatalf("status %d", rec.Code)
			}
			decodeProblem(t, rec)
		})
	}
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON; charset=UTF-8"} {
		t.Run("Content-Type "+strconvQuote(ct)+" is accepted", func(t *testing.T) {
			if rec := send(http.MethodPost, PathEvaluation, ct, body); rec.Code != 200 {
				t.Fatalf("status %d %s", rec.Code, rec.Body)
			}
		})
	}
	t.Run("an oversized body with Content-Length is 413", func(t *testing.T) {
		rec := send(http.MethodPost, PathEvaluation, "application/json", `{"x":"`+strings.Repeat("a", 4096)+`"}`)
		if rec.Code != 413 {
			t.Fatalf("status %d", rec.Code)
		}
		if p := decodeProblem(t, rec); !strings.Contains(p.Detail, "larger than 2048 bytes") {
			t.Fatalf("detail %q", p.Detail)
		}
	})
	t.Run("an oversized streamed body is 413", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, PathEvaluations, strings.NewReader(`{"x":"`+strings.Repeat("a", 4096)+`"}`))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 413 {
			t.Fatalf("status %d", rec.Code)
		}
	})
	t.Run("an unknown path is 404", func(t *testing.T) {
		rec := send(http.MethodPost, "/access/v2/evaluation", "application/json", body)
		if rec.Code != 404 {
			t.Fatalf("status %d", rec.Code)
		}
		decodeProblem(t, rec)
	})
	t.Run("X-Request-ID is echoed on success", func(t *testing.T) {
		rec := send(http.MethodPost, PathEvaluation, "application/json", body, "X-Request-ID", "req-123")
		if rec.Code != 200 || rec.Header().Get("X-Request-ID") != "req-123" {
			t.Fatalf("%d %q", rec.Code, rec.Header().Get("X-Request-ID"))
		}
	})
	t.Run("X-Request-ID is echoed on errors", func(t *testing.T) {
		for _, rec := range []*httptest.ResponseRecorder{
			send(http.MethodPost, PathEvaluation, "application/json", `{`, "X-Request-ID", "req-9"),
			send(http.MethodGet, PathEvaluation, "", "", "X-Request-ID", "req-9"),
			send(http.MethodPost, PathEvaluation, "text/plain", body, "X-Request-ID", "req-9"),
		} {
			if rec.Header().Get("X-Request-ID") != "req-9" {
				t.Fatalf("%d: X-Request-ID %q", rec.Code, rec.Header().Get("X-Request-ID"))
			}
		}
	})
	t.Run("no X-Request-ID is invented", func(t *testing.T) {
		if rec := send(http.MethodPost, PathEvaluation, "application/json", body); rec.Header().Get("X-Request-ID") != "" {
			t.Fatal("unexpected X-Request-ID")
		}
	})
	t.Run("decisions are not cacheable", func(t *testing.T) {
		if rec := send(http.MethodPost, PathEvaluation, "application/json", body); rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("Cache-Control %q", rec.Header().Get("Cache-Control"))
		}
	})
	t.Run("without an active policy set the API answers 503", func(t *testing.T) {
		h := New(Options{Views: func() engine.View { return engine.View{} }})
		rec := post(h, PathEvaluation, body)
		if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		decodeProblem(t, rec)
	})
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestMetadata(t *testing.T) {
	t.Run("with an issuer the document names it and every endpoint", func(t *testing.T) {
		h := newTodoHandler(t, Options{Issuer: "https://pdp.example.com/"})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathMetadata, nil))
		want := `{"policy_decision_point":"https://pdp.example.com",` +
			`"access_evaluation_endpoint":"https://pdp.example.com/access/v1/evaluation",` +
			`"access_evaluations_endpoint":"https://pdp.example.com/access/v1/evaluations",` +
			`"search_subject_endpoint":"https://pdp.example.com/access/v1/search/subject",` +
			`"search_resource_endpoint":"https://pdp.example.com/access/v1/search/resource",` +
			`"search_action_endpoint":"https://pdp.example.com/access/v1/search/action"}`
		if rec.Code != 200 || rec.Body.String() != want || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
	t.Run("an issuer with a path moves the metadata and the endpoints", func(t *testing.T) {
		h := newTodoHandler(t, Options{Issuer: "https://pdp.example.com/tenant1"})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/authzen-configuration/tenant1", nil))
		var m map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if m["policy_decision_point"] != "https://pdp.example.com/tenant1" || m["access_evaluation_endpoint"] != "https://pdp.example.com/tenant1/access/v1/evaluation" {
			t.Fatalf("metadata %v", m)
		}
		if rec := post(h, "/tenant1/access/v1/evaluation", rickUpdates("morty@the-citadel.com")); rec.Code != 200 {
			t.Fatalf("tenant endpoint: %d", rec.Code)
		}
		if rec := post(h, PathEvaluation, rickUpdates("morty@the-citadel.com")); rec.Code != 404 {
			t.Fatalf("unprefixed endpoint: %d", rec.Code)
		}
	})
	t.Run("without an issuer the document is derived from the request host", func(t *testing.T) {
		h := newTodoHandler(t, Options{})
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://localhost:8080"+PathMetadata, nil)
		h.ServeHTTP(rec, req)
		var m map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m["policy_decision_point"] != "http://localhost:8080" || m["search_action_endpoint"] != "http://localhost:8080/access/v1/search/action" {
			t.Fatalf("metadata %v", m)
		}
	})
	t.Run("HEAD answers without a body", func(t *testing.T) {
		h := newTodoHandler(t, Options{Issuer: "https://pdp.example.com"})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, PathMetadata, nil))
		if rec.Code != 200 || rec.Body.Len() != 0 {
			t.Fatalf("%d %q", rec.Code, rec.Body)
		}
	})
}

func TestExplain(t *testing.T) {
	snap := compileFiles(t, map[string]string{
		"p.cedar": `
@id("allow-readers") permit(principal, action == Action::"read", resource) when { context.level > 1 };
@id("block-mallory") forbid(principal == User::"mallory", action, resource);
`,
	})
	h := New(Options{Views: viewsOf(snap).View})
	req := func(user, level string) string {
		return `{"subject":{"type":"User","id":"` + user + `"},"action":{"name":"read"},"resource":{"type":"Doc","id":"d"},"context":{"level":` + level + `}}`
	}
	type explained struct {
		Decision bool `json:"decision"`
		Context  struct {
			ReasonAdmin map[string]string `json:"reason_admin"`
			Vigil       struct {
				PolicyVersion string   `json:"policy_version"`
				Determining   []string `json:"determining"`
				Errors        []struct {
					Policy  string `json:"policy"`
					Message string `json:"message"`
				} `json:"errors"`
			} `json:"vigil"`
		} `json:"context"`
	}
	decode := func(t *testing.T, rec *httptest.ResponseRecorder) explained {
		t.Helper()
		var e explained
		if rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	t.Run("an allow names the permitting policy and the version", func(t *testing.T) {
		e := decode(t, post(h, PathEvaluation, req("alice", "2"), HeaderExplain, "true"))
		if !e.Decision || len(e.Context.Vigil.Determining) != 1 || e.Context.Vigil.Determining[0] != "allow-readers" ||
			e.Context.Vigil.PolicyVersion != snap.ID || !strings.Contains(e.Context.ReasonAdmin["en"], `permitted by policy "allow-readers"`) {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("a forbid names the forbidding policy", func(t *testing.T) {
		e := decode(t, post(h, PathEvaluation, req("mallory", "2"), HeaderExplain, "1"))
		if e.Decision || e.Context.Vigil.Determining[0] != "block-mallory" || !strings.Contains(e.Context.ReasonAdmin["en"], "denied by policy") {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("an evaluation error is reported and does not allow", func(t *testing.T) {
		e := decode(t, post(h, PathEvaluation, req("alice", `"high"`), HeaderExplain, "true"))
		if e.Decision || len(e.Context.Vigil.Errors) != 1 || e.Context.Vigil.Errors[0].Policy != "allow-readers" ||
			!strings.Contains(e.Context.ReasonAdmin["en"], "failed to evaluate") {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("a default deny says no policy permits", func(t *testing.T) {
		e := decode(t, post(h, PathEvaluation, req("alice", "0"), HeaderExplain, "true"))
		if e.Decision || len(e.Context.Vigil.Determining) != 0 || e.Context.ReasonAdmin["en"] != "denied: no policy permits this request" {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("without the header the response has no context", func(t *testing.T) {
		if rec := post(h, PathEvaluation, req("alice", `"high"`)); rec.Body.String() != `{"decision":false}` {
			t.Fatalf("%s", rec.Body)
		}
	})
	t.Run("DisableExplain ignores the header", func(t *testing.T) {
		h := New(Options{Views: viewsOf(snap).View, DisableExplain: true})
		if rec := post(h, PathEvaluation, req("alice", "2"), HeaderExplain, "true"); rec.Body.String() != `{"decision":true}` {
			t.Fatalf("%s", rec.Body)
		}
	})
	t.Run("batch items carry their own explanation", func(t *testing.T) {
		rec := post(h, PathEvaluations, `{"action":{"name":"read"},"resource":{"type":"Doc","id":"d"},"context":{"level":2},`+
			`"evaluations":[{"subject":{"type":"User","id":"alice"}},{"subject":{"type":"User","id":"mallory"}}]}`, HeaderExplain, "true")
		var out struct{ Evaluations []explained }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Evaluations) != 2 {
			t.Fatalf("%v %s", err, rec.Body)
		}
		if !out.Evaluations[0].Decision || out.Evaluations[1].Decision || out.Evaluations[1].Context.Vigil.Determining[0] != "block-mallory" {
			t.Fatalf("%s", rec.Body)
		}
	})
}

func TestRecorder(t *testing.T) {
	var rec countingRecorder
	h := newTodoHandler(t, Options{Recorder: &rec})
	post(h, PathEvaluation, rickUpdates("morty@the-citadel.com"))
	post(h, PathEvaluation, rickUpdates("rick@the-citadel.com"))
	post(h, PathEvaluation, `{`)
	if rec.allow[SurfaceEvaluation] != 1 || rec.deny[SurfaceEvaluation] != 1 {
		t.Fatalf("recorded %+v", rec)
	}
}

type countingRecorder struct{ allow, deny map[string]int }

func (c *countingRecorder) Decision(surface string, allow bool, _ time.Duration) {
	if c.allow == nil {
		c.allow, c.deny = map[string]int{}, map[string]int{}
	}
	if allow {
		c.allow[surface]++
	} else {
		c.deny[surface]++
	}
}
