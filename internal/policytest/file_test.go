package policytest_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/policytest"
)

// A minimal valid case, for tests that break one thing at a time.
const okCase = `
  - name: ok
    principal: User::"alice"
    action: read
    resource: Todo::"t1"
    expect: allow
`

func TestParseRejectsBrokenFiles(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // problems, in order, as file:line:col: message prefixes
	}{
		{
			name: "an unknown key is an error naming its line",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    colour: blue\n",
			want: []string{`t_test.yaml:4:5: unknown field "colour"`},
		},
		{
			name: "an unknown top-level key is an error",
			src:  "nmae: x\ncases:" + okCase,
			want: []string{`t_test.yaml:1:1: unknown field "nmae"`},
		},
		{
			name: "a duplicate key is an error",
			src:  "cases:\n  - name: a\n    name: b\n",
			want: []string{`t_test.yaml:3:5: mapping key "name" already defined at [2:5]`},
		},
		{
			name: "a YAML syntax error is located",
			src:  "cases:\n  - name: [a\n",
			want: []string{`t_test.yaml:2:11: sequence end token ']' not found`},
		},
		{
			name: "a field of the wrong type is located",
			src:  "cases:\n  - name: a\n    reasons: 5\n",
			want: []string{`t_test.yaml:3:14: int was used where sequence is expected`},
		},
		{
			name: "a UID without quotes around the id is rejected",
			src:  "cases:\n  - name: a\n    principal: User::alice\n    action: read\n    resource: Todo::\"t1\"\n    expect: allow\n",
			want: []string{`t_test.yaml:3:16: case "a": principal: invalid entity UID "User::alice"; write Type::"id"`},
		},
		{
			name: "a UID with a single colon is rejected",
			src:  "cases:\n  - name: a\n    principal: User::\"alice\"\n    action: read\n    resource: 'Todo:\"t1\"'\n    expect: allow\n",
			want: []string{`t_test.yaml:5:15: case "a": resource: invalid entity UID "Todo:\"t1\""`},
		},
		{
			name: "a UID object with an unknown key is rejected",
			src:  "cases:\n  - name: a\n    principal: {type: User, name: alice}\n    action: read\n    resource: Todo::\"t1\"\n    expect: allow\n",
			want: []string{`t_test.yaml:3:16: case "a": principal: unknown key "name" in entity UID`},
		},
		{
			name: "a UID object with an invalid type is rejected",
			src:  "cases:\n  - name: a\n    principal: {type: \"1User\", id: alice}\n    action: read\n    resource: Todo::\"t1\"\n    expect: allow\n",
			want: []string{`t_test.yaml:3:16: case "a": principal: invalid entity type "1User"`},
		},
		{
			name: "a missing principal is reported",
			src:  "cases:\n  - name: a\n    action: read\n    resource: Todo::\"t1\"\n    expect: allow\n",
			want: []string{`t_test.yaml:2:5: case "a": principal: missing`},
		},
		{
			name: "expect must be allow or deny",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n    expect: permit\n",
			want: []string{`t_test.yaml:6:13: case "a": expect: "permit"; want allow or deny`},
		},
		{
			name: "a missing expect is reported",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n",
			want: []string{`t_test.yaml:2:5: case "a": expect is missing`},
		},
		{
			name: "null in a context is located at the attribute",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n    context:\n      device:\n        id: null\n    expect: allow\n",
			want: []string{`t_test.yaml:8:13: case "a": context.device.id: null has no Cedar equivalent`},
		},
		{
			name: "a decimal with five digits after the point is rejected",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n    context: {amount: 1.23456}\n    expect: allow\n",
			want: []string{`t_test.yaml:6:23: case "a": context.amount: 1.23456 has more than four digits after the point`},
		},
		{
			name: "an unknown extension function is rejected",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n    context: {ip: {__extn: {fn: ipv6, arg: \"::1\"}}}\n    expect: allow\n",
			want: []string{`t_test.yaml:6:28: case "a": context.ip.__extn: unknown extension function "ipv6"`},
		},
		{
			name: "a context that is not a mapping is rejected",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n    context: [1, 2]\n    expect: allow\n",
			want: []string{`t_test.yaml:6:14: case "a": context: want an object (a record), got an array`},
		},
		{
			name: "bad entities are located",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n    expect: allow\n    entities:\n      - uid: Todo::\"t1\"\n        parents: [Group:\"x\"]\n",
			want: []string{`t_test.yaml:9:19: case "a": entities[0].parents[0]: invalid entity UID "Group:\"x\""`},
		},
		{
			name: "an unknown entity key is rejected",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n    expect: allow\n    entities:\n      - uid: Todo::\"t1\"\n        attributes: {}\n",
			want: []string{`t_test.yaml:9:9: unknown field "attributes"`},
		},
		{
			name: "an entity listed twice is rejected",
			src:  "entities:\n  - uid: User::\"x\"\n  - uid: {type: User, id: x}\ncases:" + okCase,
			want: []string{`t_test.yaml:3:10: entities[1].uid: entity User::"x" is listed twice`},
		},
		{
			name: "overlay errors name the overlay key",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    principal_parents: Role::\"x\"\n    resource_attrs: {a: null}\n    action: read\n    resource: Todo::\"t1\"\n    expect: allow\n",
			want: []string{
				`t_test.yaml:4:24: case "a": principal_parents: want a list of entity UIDs, got a string`,
				`t_test.yaml:5:25: case "a": resource_attrs.a: null has no Cedar equivalent`,
			},
		},
		{
			name: "case names must be unique",
			src:  "cases:" + okCase + okCase,
			want: []string{`t_test.yaml:8:11: name: duplicate case name "ok"; also used at line 2`},
		},
		{
			name: "a case needs a name",
			src:  "cases:\n  - principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n    expect: allow\n",
			want: []string{`t_test.yaml:2:5: case 1: case has no name`},
		},
		{
			name: "problems in several cases are all reported in file order",
			src:  "cases:\n  - name: a\n    principal: User::a\n    action: read\n    resource: Todo::\"t1\"\n    expect: maybe\n  - name: b\n    principal: User::\"b\"\n    action: read\n    resource: Todo::t\n    expect: deny\n",
			want: []string{
				`t_test.yaml:3:16: case "a": principal: invalid entity UID`,
				`t_test.yaml:6:13: case "a": expect: "maybe"`,
				`t_test.yaml:10:15: case "b": resource: invalid entity UID`,
			},
		},
		{
			name: "an empty file is rejected",
			src:  "# nothing here\n",
			want: []string{`t_test.yaml: file is empty`},
		},
		{
			name: "a file without cases is rejected",
			src:  "name: nothing\ncases: []\n",
			want: []string{`t_test.yaml:2:8: no test cases`},
		},
		{
			name: "several YAML documents are rejected",
			src:  "cases:" + okCase + "---\ncases:" + okCase,
			want: []string{`t_test.yaml:8:1: more than one YAML document`},
		},
		{
			name: "deeply nested brackets are rejected before parsing",
			src:  "cases: " + strings.Repeat("[", 300) + strings.Repeat("]", 300) + "\n",
			want: []string{`t_test.yaml:1: brackets nest more than 256 levels deep`},
		},
		{
			name: "an alias to an unknown anchor is rejected",
			src:  "cases:\n  - name: a\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t1\"\n    context: *nope\n    expect: allow\n",
			want: []string{`t_test.yaml:6:15: could not find alias "nope"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := policytest.Parse("t_test.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("want an error, got a suite with %d cases", len(s.Cases))
			}
			var le *policytest.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("want a *LoadError, got %T: %v", err, err)
			}
			if len(le.Problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(le.Problems), len(tt.want), err)
			}
			for i, p := range le.Problems {
				if !strings.HasPrefix(p.String(), tt.want[i]) {
					t.Errorf("problem %d:\n got  %s\n want %s...", i, p.String(), tt.want[i])
				}
			}
		})
	}
}

func TestParseReadsEveryField(t *testing.T) {
	src := `name: everything
anchors:
  ctx: &ctx {ip: {__extn: {fn: ip, arg: "10.0.0.1"}}}
entities:
  - uid: Group::"g"
cases:
  - name: all fields
    principal: {type: User, id: alice}
    principal_attrs: {level: 3}
    principal_parents: [Group::"g"]
    action: Action::"read"
    resource: Todo::"t1"
    resource_attrs: {ratio: 0.5}
    resource_parents: []
    context: {<<: *ctx, n: 1}
    entities:
      - uid: {__entity: {type: Todo, id: t2}}
        attrs: {owner: {__entity: {type: User, id: alice}}}
        parents: [{type: Group, id: g}]
        tags: {color: red}
    expect: deny
    reasons: [b, a]
    errors: true
    validate: false
  - name: defaults
    principal: User::"bob"
    action: GET /todos/{id}
    resource: Todo::"t1"
    expect: allow
    skip: later
`
	s, err := policytest.Parse("dir/every_test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "everything" || s.File != "dir/every_test.yaml" || len(s.Cases) != 2 {
		t.Fatalf("suite = %q %q with %d cases", s.Name, s.File, len(s.Cases))
	}
	c := s.Cases[0]
	r := c.Request
	if c.Line != 7 || c.Allow || !c.CheckReasons || strings.Join(c.Reasons, ",") != "b,a" || c.Errors == nil || !*c.Errors || c.Validate {
		t.Errorf("case fields = %+v", c)
	}
	if r.Principal != types.NewEntityUID("User", "alice") || r.Action != types.NewEntityUID("Action", "read") || r.Resource != types.NewEntityUID("Todo", "t1") {
		t.Errorf("UIDs = %v %v %v", r.Principal, r.Action, r.Resource)
	}
	if v, ok := r.Context.Get("n"); !ok || v != types.Long(1) {
		t.Errorf("context.n = %v", v)
	}
	if v, ok := r.Context.Get("ip"); !ok || v.String() != "10.0.0.1" {
		t.Errorf("context.ip = %v (merged from the anchor)", v)
	}
	if r.PrincipalOverlay == nil || !r.PrincipalOverlay.ReplaceParents || len(r.PrincipalOverlay.Parents) != 1 {
		t.Errorf("principal overlay = %+v", r.PrincipalOverlay)
	}
	if r.ResourceOverlay == nil || !r.ResourceOverlay.ReplaceParents || len(r.ResourceOverlay.Parents) != 0 {
		t.Errorf("resource overlay = %+v", r.ResourceOverlay)
	}
	if d, ok := r.ResourceOverlay.Attrs.Get("ratio"); !ok || d.String() != "0.5" {
		t.Errorf("resource_attrs.ratio = %v, want decimal 0.5", d)
	}
	if len(r.Entities) != 2 {
		t.Fatalf("entities = %v, want the case's and the file's", r.Entities)
	}
	t2 := r.Entities[types.NewEntityUID("Todo", "t2")]
	if owner, _ := t2.Attributes.Get("owner"); owner != types.NewEntityUID("User", "alice") {
		t.Errorf("t2.owner = %v", owner)
	}
	if color, _ := t2.Tags.Get("color"); color != types.String("red") {
		t.Errorf("t2 tags = %v", t2.Tags)
	}
	if !t2.Parents.Contains(types.NewEntityUID("Group", "g")) {
		t.Errorf("t2 parents = %v", t2.Parents)
	}

	d := s.Cases[1]
	if d.Request.Action != types.NewEntityUID("Action", "GET /todos/{id}") {
		t.Errorf("a bare action name should mean Action::\"name\", got %v", d.Request.Action)
	}
	if !d.Validate || d.CheckReasons || d.Errors != nil || d.Skip != "later" || d.Request.PrincipalOverlay != nil {
		t.Errorf("defaults = %+v", d)
	}
	if s2, _ := policytest.Parse("x/y_test.yaml", []byte("cases:"+okCase)); s2.Name != "y_test.yaml" {
		t.Errorf("a suite without name: is named after its file, got %q", s2.Name)
	}
}

func TestParseBoundsAliasExpansion(t *testing.T) {
	// Nine levels of nine aliases describe 9^9 values in a few hundred bytes.
	var b strings.Builder
	b.WriteString("anchors:\n  l0: &l0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		prev := "*l" + string(rune('0'+i-1))
		b.WriteString("  l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [" + strings.Repeat(prev+", ", 8) + prev + "]\n")
	}
	b.WriteString("cases:\n  - name: bomb\n    principal: User::\"a\"\n    action: read\n    resource: Todo::\"t\"\n    context: {v: *l8}\n    expect: allow\n")
	_, err := policytest.Parse("bomb_test.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too many values") {
		t.Fatalf("want the value budget to stop the expansion, got %v", err)
	}
}

func TestParseRejectsHugeFiles(t *testing.T) {
	big := make([]byte, policytest.MaxFileBytes+1)
	_, err := policytest.Parse("big_test.yaml", big)
	if err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("want a size error, got %v", err)
	}
}

// FuzzParse checks that no input makes the test file parser panic or hang,
// and that what it accepts is well formed.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/todo", "testdata/failing", "testdata/parse", "../../examples/quickstart"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("cases:" + okCase))
	f.Add([]byte("cases: [{name: a, principal: {__entity: {type: U, id: x}}, action: a, resource: R::\"r\", expect: deny, context: {a: [1, 2.5, {__extn: {fn: decimal, arg: \"1.2\"}}]}}]"))
	f.Add([]byte("anchors: {a: &a [1, 2]}\ncases:\n  - {name: a, principal: U::\"u\", action: a, resource: R::\"r\", expect: allow, context: {x: *a, <<: {y: 1}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := policytest.Parse("fuzz_test.yaml", data)
		if err != nil {
			var le *policytest.LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error is not a *LoadError with problems: %v", err)
			}
			return
		}
		if len(s.Cases) == 0 {
			t.Fatal("accepted a file without cases")
		}
		for _, c := range s.Cases {
			if c.Name == "" || c.Line <= 0 {
				t.Fatalf("accepted a case without a name or line: %+v", c)
			}
		}
	})
}
