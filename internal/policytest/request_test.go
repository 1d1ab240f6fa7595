package policytest_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/policytest"
)

func TestParseRequestFromFlags(t *testing.T) {
	r, err := policytest.ParseRequest(policytest.RequestFlags{
		Principal: `User::"alice"`,
		Action:    `GET /documents/{id}`,
		Resource:  `Document::"roadmap"`,
		Context:   `{"request": {"time": 1767225600, "ip": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}}, "score": 0.75}`,
		Entities:  `[{"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": [{"type": "Role", "id": "admin"}]}]`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Principal != types.NewEntityUID("User", "alice") || r.Action != types.NewEntityUID("Action", "GET /documents/{id}") || r.Resource != types.NewEntityUID("Document", "roadmap") {
		t.Errorf("UIDs = %v %v %v", r.Principal, r.Action, r.Resource)
	}
	req, _ := r.Context.Get("request")
	if tm, _ := req.(types.Record).Get("time"); tm != types.Long(1767225600) {
		t.Errorf("context.request.time = %v", tm)
	}
	if s, _ := r.Context.Get("score"); s.String() != "0.75" {
		t.Errorf("context.score = %v, want decimal 0.75", s)
	}
	if e, ok := r.Entities[r.Principal]; !ok || !e.Parents.Contains(types.NewEntityUID("Role", "admin")) {
		t.Errorf("entities = %v", r.Entities)
	}
}

func TestParseRequestRejectsBadFlags(t *testing.T) {
	ok := policytest.RequestFlags{Principal: `User::"a"`, Action: "read", Resource: `Doc::"d"`}
	tests := []struct {
		name   string
		change func(*policytest.RequestFlags)
		want   string
	}{
		{"a missing principal is named", func(f *policytest.RequestFlags) { f.Principal = "" }, "--principal: missing"},
		{"a bad principal UID is named", func(f *policytest.RequestFlags) { f.Principal = "User::a" }, `--principal: invalid entity UID "User::a"`},
		{"a bad resource UID is named", func(f *policytest.RequestFlags) { f.Resource = `Doc:"d"` }, `--resource: invalid entity UID`},
		{"a broken action UID is named", func(f *policytest.RequestFlags) { f.Action = `Action::read` }, `--action: invalid entity UID`},
		{"invalid context JSON is named", func(f *policytest.RequestFlags) { f.Context = `{"a": }` }, "--context: invalid JSON"},
		{"trailing data after the context is rejected", func(f *policytest.RequestFlags) { f.Context = `{} {}` }, "unexpected data after the value"},
		{"a context that is not an object is rejected", func(f *policytest.RequestFlags) { f.Context = `[1]` }, "--context: want an object"},
		{"null in the context is rejected with its path", func(f *policytest.RequestFlags) { f.Context = `{"a": {"b": null}}` }, "--context: null has no Cedar equivalent"},
		{"invalid entities are named", func(f *policytest.RequestFlags) { f.Entities = `{}` }, "--entities: want a JSON array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ok
			tt.change(&f)
			_, err := policytest.ParseRequest(f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseRequestJSON(t *testing.T) {
	doc := `{
  "principal": "User::\"alice\"",
  "principal_parents": ["Role::\"admin\""],
  "action": {"type": "Action", "id": "read"},
  "resource": {"type": "Document", "id": "d1"},
  "context": {"device": {"id": "laptop-7", "compliant": true}}
}`
	r, err := policytest.ParseRequestJSON("request.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if r.Principal != types.NewEntityUID("User", "alice") || r.Action != types.NewEntityUID("Action", "read") || r.Resource != types.NewEntityUID("Document", "d1") {
		t.Errorf("UIDs = %v %v %v", r.Principal, r.Action, r.Resource)
	}
	if r.PrincipalOverlay == nil || len(r.PrincipalOverlay.Parents) != 1 {
		t.Errorf("principal overlay = %+v", r.PrincipalOverlay)
	}

	bad := []struct {
		name, doc, want string
	}{
		{"an unknown key is rejected with its line", "{\n  \"principal\": \"User::\\\"a\\\"\",\n  \"expect\": \"allow\"\n}", `request.json:3:3: unknown field "expect"`},
		{"a bad UID is located", "{\"principal\": \"User::a\", \"action\": \"read\", \"resource\": \"D::\\\"d\\\"\"}", `request.json:1:15: principal: invalid entity UID "User::a"`},
		{"an empty document is rejected", "", "want one JSON object"},
		{"a document that is not an object is rejected", "[1, 2]", "request.json:1:1:"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policytest.ParseRequestJSON("request.json", []byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRequestDecisionAppliesOverlays(t *testing.T) {
	snap := compile(t, "testdata/todo")
	alice := types.NewEntityUID("User", "alice")
	erin := types.NewEntityUID("User", "erin")
	editors := types.NewEntityUID("Group", "editors")
	t1 := types.NewEntityUID("Todo", "t1")

	t.Run("a request without overlays passes no entities", func(t *testing.T) {
		d := policytest.Request{Principal: alice, Resource: t1}.Decision(snap)
		if d.Entities != nil {
			t.Errorf("entities = %v, want nil", d.Entities)
		}
	})
	t.Run("attrs are laid over stored attributes", func(t *testing.T) {
		d := policytest.Request{Principal: alice, PrincipalOverlay: &policytest.Overlay{
			Attrs: types.NewRecord(types.RecordMap{"level": types.Long(3)}),
		}}.Decision(snap)
		e := d.Entities[alice]
		if v, _ := e.Attributes.Get("blocked"); v != types.False {
			t.Errorf("stored attribute lost: %v", e.Attributes)
		}
		if v, _ := e.Attributes.Get("level"); v != types.Long(3) {
			t.Errorf("overlay attribute missing: %v", e.Attributes)
		}
	})
	t.Run("parents are replaced, not merged", func(t *testing.T) {
		d := policytest.Request{Principal: erin, PrincipalOverlay: &policytest.Overlay{ReplaceParents: true}}.Decision(snap)
		if d.Entities[erin].Parents.Contains(editors) {
			t.Errorf("stored parent kept: %v", d.Entities[erin].Parents)
		}
		if snap.Entities[erin].Parents.Len() != 1 {
			t.Error("the overlay changed the snapshot's entity")
		}
	})
	t.Run("an overlay on an unknown entity creates it", func(t *testing.T) {
		ghost := types.NewEntityUID("User", "ghost")
		d := policytest.Request{Principal: ghost, PrincipalOverlay: &policytest.Overlay{Parents: []types.EntityUID{editors}, ReplaceParents: true}}.Decision(snap)
		if !d.Entities[ghost].Parents.Contains(editors) {
			t.Errorf("entities = %v", d.Entities)
		}
	})
	t.Run("an overlay applies on top of request entities", func(t *testing.T) {
		d := policytest.Request{
			Resource: t1,
			Entities: types.EntityMap{t1: {UID: t1, Attributes: types.NewRecord(types.RecordMap{"owner": erin})}},
			ResourceOverlay: &policytest.Overlay{
				Attrs: types.NewRecord(types.RecordMap{"title": types.String("x")}),
			},
		}.Decision(snap)
		e := d.Entities[t1]
		if v, _ := e.Attributes.Get("owner"); v != erin {
			t.Errorf("owner = %v, want the request entity's", v)
		}
		if v, _ := e.Attributes.Get("title"); v != types.String("x") {
			t.Errorf("title = %v", v)
		}
	})
}

func TestWriteResult(t *testing.T) {
	snap := compile(t, "../../examples/quickstart")
	r, err := policytest.ParseRequest(policytest.RequestFlags{
		Principal: `User::"alice"`,
		Action:    `DELETE /documents/{id}`,
		Resource:  `Document::"roadmap"`,
		Context:   `{"request": {"method": "DELETE", "path": "/documents/roadmap", "host": "docs.example.com", "ip": {"__extn": {"fn": "ip", "arg": "203.0.113.7"}}, "time": 1767225600}}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	res := decision.Decide(snap, r.Decision(snap))
	// Stable across edits of the example and of the scope index.
	res.PolicyVersion, res.Evaluated = "0123456789abcdef", 4

	var text bytes.Buffer
	if err := policytest.WriteResult(&text, r, res, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "eval_step_up.txt", text.Bytes())
	var js bytes.Buffer
	if err := policytest.WriteResult(&js, r, res, true); err != nil {
		t.Fatal(err)
	}
	golden(t, "eval_step_up.json", js.Bytes())

	// A default deny and evaluation errors read differently.
	r2 := policytest.Request{Principal: types.NewEntityUID("User", "ghost"), Action: types.NewEntityUID("Action", "read"), Resource: types.NewEntityUID("Todo", "t1")}
	todo := compile(t, "testdata/todo")
	res2 := decision.Decide(todo, r2.Decision(todo))
	res2.PolicyVersion, res2.Evaluated = "fedcba9876543210", 2
	res2.Allow = false
	res2.Determining = nil
	var text2 bytes.Buffer
	if err := policytest.WriteResult(&text2, r2, res2, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "eval_errors.txt", text2.Bytes())
}

// FuzzParseRequestJSON checks that no request document makes the parser
// panic, and that what it accepts can be decided.
func FuzzParseRequestJSON(f *testing.F) {
	f.Add([]byte(`{"principal": "User::\"a\"", "action": "read", "resource": {"type": "D", "id": "d"}}`))
	f.Add([]byte(`{"principal": "User::\"a\"", "principal_parents": ["Role::\"r\""], "action": "Action::\"x\"", "resource": "D::\"d\"", "context": {"a": [1, 2.5, {"__extn": {"fn": "ip", "arg": "::1"}}]}, "entities": [{"uid": "D::\"d\"", "attrs": {"o": {"__entity": {"type": "User", "id": "a"}}}}]}`))
	f.Add([]byte(`principal: User::"a"` + "\naction: read\nresource: D::\"d\"\n"))
	snap := compile(f, "testdata/todo")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := policytest.ParseRequestJSON("fuzz.json", data)
		if err != nil {
			return
		}
		_ = policytest.Eval(snap, r)
	})
}
