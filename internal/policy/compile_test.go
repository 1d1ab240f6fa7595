package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// readBundle reads testdata/compile/<name> into a Bundle, with file names
// relative to that directory.
func readBundle(t testing.TB, name string) Bundle {
	t.Helper()
	root := filepath.Join("testdata", "compile", name)
	var b Bundle
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		b.Files = append(b.Files, File{Name: filepath.ToSlash(rel), Data: data})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) == 0 {
		t.Fatalf("testdata bundle %s is empty", name)
	}
	return b
}

func mustCompile(t testing.TB, b Bundle) *Snapshot {
	t.Helper()
	snap, err := Compile(b)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return snap
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		t.Fatal("Compile succeeded; want problems")
	}
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T (%v); want *CompileError", err, err)
	}
	return ce.Problems
}

const anyPolicy = "permit(principal, action, resource);\n"

func TestCompileReportsProblems(t *testing.T) {
	big := make([]byte, MaxFileBytes+1)
	third := make([]byte, MaxTotal/4) // five of them exceed MaxTotal
	manyFiles := make([]File, MaxFiles+1)
	for i := range manyFiles {
		manyFiles[i] = File{Name: fmt.Sprintf("p%05d.cedar", i), Data: []byte(anyPolicy)}
	}
	deep := "permit(principal, action, resource) when { " + strings.Repeat("(", MaxPolicyOperators) + "true" + strings.Repeat(")", MaxPolicyOperators) + " };\n"
	longChain := "permit(principal, action, resource) when { true" + strings.Repeat(" && true", MaxPolicyOperators+1) + " };\n"
	deepSchema := "type T = " + strings.Repeat("Set<", MaxSchemaNesting+1) + "Long" + strings.Repeat(">", MaxSchemaNesting+1) + ";\n"

	tests := []struct {
		name     string
		testdata string    // a directory under testdata/compile, or
		bundle   Bundle    // a bundle built here
		want     []Problem // Message: substrings separated by "…", in order
	}{
		{
			name:     "a policy syntax error is located by file, line and column",
			testdata: "syntax-error",
			want:     []Problem{{File: "policies.cedar", Line: 4, Column: 44, Message: "exact got ) want ,"}},
		},
		{
			name:     "a schema syntax error is located by file, line and column",
			testdata: "schema-syntax-error",
			want:     []Problem{{File: "schema.cedarschema", Line: 3, Column: 13, Message: "expected ':'"}},
		},
		{
			name:     "policies that use undeclared attributes and entity types fail validation",
			testdata: "schema-type-error",
			want: []Problem{
				{File: "policies.cedar", Line: 1, Column: 1, Policy: "uses-missing-attribute", Message: "attribute `department` on entity type `User` not found"},
				{File: "policies.cedar", Line: 5, Column: 1, Policy: "uses-unknown-type", Message: "unrecognized entity type `Robot`"},
				{File: "policies.cedar", Line: 5, Column: 1, Policy: "uses-unknown-type", Message: "unable to find an applicable action"},
			},
		},
		{
			name:     "entities that do not match the schema are located",
			testdata: "entity-schema-mismatch",
			want: []Problem{
				{File: "e.entities.json", Line: 2, Column: 3, Message: `entity User::"alice": attribute "name": expected String`},
				{File: "e.entities.json", Line: 3, Column: 3, Message: `entity Robot::"r2": entity type "Robot" not found in schema`},
			},
		},
		{
			name:     "an @id used in two files is reported with both places",
			testdata: "duplicate-id",
			want:     []Problem{{File: "b.cedar", Line: 3, Column: 1, Policy: "shared", Message: "duplicate policy ID; also defined at a.cedar:1:1"}},
		},
		{
			name:     "an empty @id is rejected",
			testdata: "empty-id",
			want:     []Problem{{File: "p.cedar", Line: 3, Column: 3, Message: `@id("") is empty`}},
		},
		{
			name:     "two schema files are rejected",
			testdata: "two-schemas",
			want:     []Problem{{Message: "more than one schema file: a.cedarschema, b.cedarschema.json"}},
		},
		{
			name:     "malformed entities JSON is located by line and column",
			testdata: "entities-syntax-error",
			want:     []Problem{{File: "e.entities.json", Line: 3, Column: 67, Message: "invalid character '}'"}},
		},
		{
			name:     "an entities JSON value of the wrong type is located",
			testdata: "entities-type-error",
			// go-json-experiment words this "cannot" or "unable to" at random.
			want: []Problem{{File: "e.entities.json", Line: 5, Column: 15, Message: `entity 2: json: … unmarshal JSON string into Go []types.EntityUID within "/parents"`}},
		},
		{
			name:     "data after the entities array is located",
			testdata: "entities-trailing-data",
			want:     []Problem{{File: "e.entities.json", Line: 4, Column: 1, Message: "unexpected data after the entities array"}},
		},
		{
			name:     "an entity defined in two files is reported with both places",
			testdata: "entities-duplicate",
			want:     []Problem{{File: "b.entities.json", Line: 1, Column: 2, Message: `entity User::"a" is also defined at a.entities.json:1:2`}},
		},
		{
			name:   "an entity defined twice in one file is reported",
			bundle: Bundle{Files: []File{{Name: "p.cedar", Data: []byte(anyPolicy)}, {Name: "e.entities.json", Data: []byte(`[{"uid":{"type":"U","id":"a"},"parents":[],"attrs":{}},` + "\n" + `{"uid":{"type":"U","id":"a"},"parents":[],"attrs":{}}]`)}}},
			want:   []Problem{{File: "e.entities.json", Line: 2, Column: 1, Message: `entity U::"a" is also defined at e.entities.json:1:2`}},
		},
		{
			name:   "an entity missing attrs is located",
			bundle: Bundle{Files: []File{{Name: "p.cedar", Data: []byte(anyPolicy)}, {Name: "e.entities.json", Data: []byte("[\n  {\"uid\":{\"type\":\"U\",\"id\":\"a\"},\"parents\":[]}\n]")}}},
			want:   []Problem{{File: "e.entities.json", Line: 2, Column: 3, Message: `entity 1: invalid entity: "attrs" is missing or null`}},
		},
		{
			name:   "an entities file that is not an array is rejected",
			bundle: Bundle{Files: []File{{Name: "p.cedar", Data: []byte(anyPolicy)}, {Name: "e.entities.json", Data: []byte("\n  {}")}}},
			want:   []Problem{{File: "e.entities.json", Line: 2, Column: 3, Message: "expected a JSON array of entities"}},
		},
		{
			name:   "a truncated entities file is located at its end",
			bundle: Bundle{Files: []File{{Name: "p.cedar", Data: []byte(anyPolicy)}, {Name: "e.entities.json", Data: []byte("[\n  {\"uid\": ")}}},
			want:   []Problem{{File: "e.entities.json", Line: 2, Column: 10, Message: "unexpected end of JSON input"}},
		},
		{
			name:   "an unterminated entities array is located at its end",
			bundle: Bundle{Files: []File{{Name: "p.cedar", Data: []byte(anyPolicy)}, {Name: "e.entities.json", Data: []byte("[\n")}}},
			want:   []Problem{{File: "e.entities.json", Line: 1, Column: 2, Message: "unexpected end of JSON input"}},
		},
		{
			name:   "an empty entities file is rejected",
			bundle: Bundle{Files: []File{{Name: "p.cedar", Data: []byte(anyPolicy)}, {Name: "e.entities.json", Data: []byte(" \n")}}},
			want:   []Problem{{File: "e.entities.json", Message: "file is empty"}},
		},
		{
			name:   "a bundle without policies is refused",
			bundle: Bundle{Files: []File{{Name: "e.entities.json", Data: []byte("[]")}, {Name: "empty.cedar", Data: []byte("// nothing yet\n")}}},
			want:   []Problem{{Message: "the policy set has no policies"}},
		},
		{
			name: "file names that leave the bundle or are not clean are rejected",
			bundle: Bundle{Files: []File{
				{Name: "../x.cedar", Data: []byte(anyPolicy)},
				{Name: "/etc/x.cedar", Data: []byte(anyPolicy)},
				{Name: "", Data: []byte(anyPolicy)},
				{Name: "./a.cedar", Data: []byte(anyPolicy)},
				{Name: "a//b.cedar", Data: []byte(anyPolicy)},
				{Name: `dir\x.cedar`, Data: []byte(anyPolicy)},
				{Name: "dir/../../x.cedar", Data: []byte(anyPolicy)},
			}},
			want: []Problem{
				{File: "", Message: "file name is empty"},
				{File: "../x.cedar", Message: "clean relative path"},
				{File: "./a.cedar", Message: "clean relative path"},
				{File: "/etc/x.cedar", Message: "relative slash-separated path"},
				{File: "a//b.cedar", Message: "clean relative path"},
				{File: "dir/../../x.cedar", Message: "clean relative path"},
				{File: `dir\x.cedar`, Message: "relative slash-separated path"},
			},
		},
		{
			name:   "a file over the size limit is rejected",
			bundle: Bundle{Files: []File{{Name: "big.cedar", Data: big}}},
			want:   []Problem{{File: "big.cedar", Message: fmt.Sprintf("file is %d bytes; at most %d are allowed", MaxFileBytes+1, MaxFileBytes)}},
		},
		{
			name: "a bundle over the total size limit is rejected",
			bundle: Bundle{Files: []File{
				{Name: "a.cedar", Data: third}, {Name: "b.cedar", Data: third}, {Name: "c.cedar", Data: third},
				{Name: "d.cedar", Data: third}, {Name: "e.cedar", Data: third},
			}},
			want: []Problem{{Message: fmt.Sprintf("at most %d are allowed", MaxTotal)}},
		},
		{
			name:   "a bundle with too many files is rejected",
			bundle: Bundle{Files: manyFiles},
			want:   []Problem{{Message: fmt.Sprintf("bundle has %d files; at most %d are allowed", MaxFiles+1, MaxFiles)}},
		},
		{
			name: "files of unknown kinds are rejected",
			bundle: Bundle{Files: []File{
				{Name: "notes.txt", Data: []byte("hello")},
				{Name: "p.cedar.bak", Data: []byte(anyPolicy)},
			}},
			want: []Problem{
				{File: "notes.txt", Message: "unknown file kind"},
				{File: "p.cedar.bak", Message: "unknown file kind"},
			},
		},
		{
			name:   "a file listed twice is rejected",
			bundle: Bundle{Files: []File{{Name: "p.cedar", Data: []byte(anyPolicy)}, {Name: "p.cedar", Data: []byte(anyPolicy)}}},
			want:   []Problem{{File: "p.cedar", Message: "file appears twice"}},
		},
		{
			name:   "deeply nested brackets are rejected before they reach the parser",
			bundle: Bundle{Files: []File{{Name: "p.cedar", Data: []byte(anyPolicy + "\n" + deep)}}},
			want:   []Problem{{File: "p.cedar", Line: 3, Column: 1, Message: "policy is too complex"}},
		},
		{
			name:   "a very long chain of operators is rejected",
			bundle: Bundle{Files: []File{{Name: "p.cedar", Data: []byte(longChain)}}},
			want:   []Problem{{File: "p.cedar", Line: 1, Column: 1, Message: "policy is too complex"}},
		},
		{
			name:   "a deeply nested schema is rejected",
			bundle: Bundle{Files: []File{{Name: "s.cedarschema", Data: []byte(deepSchema)}, {Name: "p.cedar", Data: []byte(anyPolicy)}}},
			want:   []Problem{{File: "s.cedarschema", Line: 1, Column: len("type T = ") + 4*(MaxSchemaNesting+1), Message: fmt.Sprintf("schema nests deeper than %d levels", MaxSchemaNesting)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.bundle
			if tt.testdata != "" {
				b = readBundle(t, tt.testdata)
			}
			snap, err := Compile(b)
			if snap != nil {
				t.Errorf("Compile returned a snapshot along with an error")
			}
			got := problemsOf(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.File != w.File || g.Line != w.Line || g.Column != w.Column || g.Policy != w.Policy || !containsInOrder(g.Message, w.Message) {
					t.Errorf("problem %d:\n got  %#v\n want %#v (message as substrings)", i, g, w)
				}
			}
		})
	}
}

// containsInOrder reports whether s contains the parts of want, separated
// by "…", in order.
func containsInOrder(s, want string) bool {
	for _, part := range strings.Split(want, "…") {
		i := strings.Index(s, strings.TrimSpace(part))
		if i < 0 {
			return false
		}
		s = s[i+len(strings.TrimSpace(part)):]
	}
	return true
}

func TestCompileAcceptsPoliciesAtTheComplexityLimit(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		// The limit counts "permit(" and "when {" too.
		{"brackets nested right up to the limit", "permit(principal, action, resource) when { " + strings.Repeat("(", MaxPolicyOperators-2) + "true" + strings.Repeat(")", MaxPolicyOperators-2) + " };"},
		{"brackets and operators in strings and comments are not counted", "permit(principal, action, resource) when { \"" + strings.Repeat("((&&\\\"", 3*MaxPolicyOperators) + "\" == \"\" // " + strings.Repeat("(", 2*MaxPolicyOperators) + "\n};"},
		{"every policy has its own budget", strings.Repeat("permit(principal, action, resource) when { true"+strings.Repeat(" && true", MaxPolicyOperators/2)+" };\n", 4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustCompile(t, Bundle{Files: []File{{Name: "p.cedar", Data: []byte(tt.src)}}})
		})
	}
}

func TestCompileValidBundle(t *testing.T) {
	b := readBundle(t, "valid")
	snap := mustCompile(t, b)

	t.Run("policies without @id get file:line:col IDs", func(t *testing.T) {
		var ids []string
		for id := range snap.Index.All() {
			ids = append(ids, string(id))
		}
		want := []string{"editors", "policies/main.cedar:11:1", "policies/more.cedar:1:1"}
		if !slices.Equal(ids, want) {
			t.Errorf("policy IDs = %q, want %q", ids, want)
		}
	})
	t.Run("the snapshot ID is the bundle hash", func(t *testing.T) {
		if snap.ID != b.Hash() || len(snap.ID) != 16 {
			t.Errorf("ID = %q, bundle hash = %q", snap.ID, b.Hash())
		}
	})
	t.Run("the snapshot keeps the sorted source files", func(t *testing.T) {
		var names []string
		for _, f := range snap.Bundle.Files {
			names = append(names, f.Name)
		}
		want := []string{"data/users.entities.json", "policies/main.cedar", "policies/more.cedar", "schema.cedarschema"}
		if !slices.Equal(names, want) {
			t.Errorf("files = %q, want %q", names, want)
		}
	})
	t.Run("entities include the schema's actions", func(t *testing.T) {
		for _, u := range []string{`Role::"editor"`, `User::"alice"`, `Doc::"report"`, `Action::"read"`, `Action::"delete"`} {
			found := false
			for uid := range snap.Entities {
				found = found || uid.String() == u
			}
			if !found {
				t.Errorf("entity %s is missing", u)
			}
		}
		if snap.Schema == nil {
			t.Error("Schema is nil")
		}
	})
	t.Run("annotations are kept", func(t *testing.T) {
		if got := snap.Index.Annotations("editors")["description"]; got != "editors may read and write" {
			t.Errorf("description = %q", got)
		}
	})
	t.Run("the policies decide", func(t *testing.T) {
		alice := types.NewEntityUID("User", "alice")
		req := cedar.Request{
			Principal: alice,
			Action:    types.NewEntityUID("Action", "write"),
			Resource:  types.NewEntityUID("Doc", "report"),
			Context:   types.NewRecord(types.RecordMap{"risk": types.NewRecord(types.RecordMap{"level": types.Long(1)})}),
		}
		dec, diag := cedar.Authorize(snap.Index, snap.Entities, req)
		if dec != cedar.Allow || len(diag.Reasons) != 1 || diag.Reasons[0].PolicyID != "editors" {
			t.Errorf("decision = %v %+v; want allow by editors", dec, diag)
		}
	})
}

func TestSchemaActionsAreEntities(t *testing.T) {
	tests := []struct {
		bundle string
		policy cedar.PolicyID
		allow  map[string]bool
	}{
		{"action-groups", "read-only", map[string]bool{"read": true, "list": true, "readOnly": true, "write": false}},
		{"json-schema", "p.cedar:1:1", map[string]bool{"read": true, "write": true}},
	}
	for _, tt := range tests {
		snap := mustCompile(t, readBundle(t, tt.bundle))
		for action, want := range tt.allow {
			name := fmt.Sprintf("in %s, %s is in the group iff the schema says so", tt.bundle, action)
			t.Run(name, func(t *testing.T) {
				req := cedar.Request{
					Principal: types.NewEntityUID("User", "u"),
					Action:    types.NewEntityUID("Action", types.String(action)),
					Resource:  types.NewEntityUID("Doc", "d"),
					Context:   types.NewRecord(nil),
				}
				dec, _ := cedar.Authorize(snap.Index, snap.Entities, req)
				if got := dec == cedar.Allow; got != want {
					t.Errorf("allow = %v, want %v", got, want)
				}
				sel := snap.Index.Select(snap.Entities, req.Principal, req.Action, req.Resource)
				if got := sel.Len() == 1; got != want {
					t.Errorf("index selected %d policies; want the policy selected = %v", sel.Len(), want)
				}
			})
		}
	}
}

func TestSnapshotActions(t *testing.T) {
	tests := []struct {
		name   string
		bundle string
		want   []string
	}{
		{"with a schema, the actions are the schema's", "action-groups", []string{`Action::"list"`, `Action::"read"`, `Action::"readOnly"`, `Action::"write"`}},
		{"with a JSON schema, the actions are the schema's", "json-schema", []string{`Action::"read"`, `Action::"write"`}},
		{"without a schema, the actions are those in scopes and action entities", "no-schema", []string{`Action::"admin"`, `Action::"comment"`, `Action::"edit"`, `Action::"purge"`, `Action::"view"`, `App::Action::"sync"`}},
		{"without a schema or scoped actions there are none", "two-schemas/p.cedar", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Bundle
			if dir, file, ok := strings.Cut(tt.bundle, "/"); ok {
				for _, f := range readBundle(t, dir).Files {
					if f.Name == file {
						b.Files = append(b.Files, f)
					}
				}
			} else {
				b = readBundle(t, tt.bundle)
			}
			snap := mustCompile(t, b)
			var got []string
			for _, a := range snap.Actions {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Actions = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBundleHash(t *testing.T) {
	a := File{Name: "a.cedar", Data: []byte(anyPolicy)}
	b := File{Name: "b.cedar", Data: []byte("forbid(principal, action, resource);\n")}
	base := Bundle{Files: []File{a, b}}.Hash()
	tests := []struct {
		name string
		b    Bundle
		same bool
	}{
		{"the same files in another order hash the same", Bundle{Files: []File{b, a}}, true},
		{"a changed byte changes the hash", Bundle{Files: []File{a, {Name: b.Name, Data: append(bytes.Clone(b.Data), ' ')}}}, false},
		{"a renamed file changes the hash", Bundle{Files: []File{a, {Name: "c.cedar", Data: b.Data}}}, false},
		{"a missing file changes the hash", Bundle{Files: []File{a}}, false},
		{"moving bytes between a name and its data changes the hash", Bundle{Files: []File{a, {Name: "b.cedarf", Data: b.Data[1:]}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Hash() == base; got != tt.same {
				t.Errorf("hash equal = %v, want %v", got, tt.same)
			}
		})
	}
	t.Run("hashing does not reorder the caller's files", func(t *testing.T) {
		files := []File{b, a}
		Bundle{Files: files}.Hash()
		if files[0].Name != "b.cedar" {
			t.Error("Hash sorted the caller's slice")
		}
	})
}

func TestCompileProblemsAreDeterministic(t *testing.T) {
	var ents strings.Builder
	ents.WriteString("[\n")
	for i := range 40 {
		if i > 0 {
			ents.WriteString(",\n")
		}
		fmt.Fprintf(&ents, `{"uid":{"type":"User","id":"u%02d"},"parents":[],"attrs":{"name":%d}}`, i, i)
	}
	ents.WriteString("\n]")
	b := Bundle{Files: []File{
		{Name: "s.cedarschema", Data: []byte("entity User = { name: String };\n")},
		{Name: "p.cedar", Data: []byte("forbid(principal, action, resource);\n")},
		{Name: "e.entities.json", Data: []byte(ents.String())},
	}}
	_, first := Compile(b)
	probs := problemsOf(t, first)
	if len(probs) != 40 {
		t.Fatalf("got %d problems, want 40", len(probs))
	}
	for i, p := range probs {
		if p.Line != i+2 {
			t.Fatalf("problem %d is at line %d; want problems in file order", i, p.Line)
		}
	}
	for range 5 {
		if _, err := Compile(b); err.Error() != first.Error() {
			t.Fatalf("problems differ between runs:\n%v\n---\n%v", err, first)
		}
	}
}

func TestCompileLimitsProblems(t *testing.T) {
	var src strings.Builder
	for range MaxProblems + 50 {
		src.WriteString("@id(\"\") permit(principal, action, resource);\n")
	}
	_, err := Compile(Bundle{Files: []File{{Name: "p.cedar", Data: []byte(src.String())}}})
	probs := problemsOf(t, err)
	if len(probs) != MaxProblems+1 {
		t.Fatalf("got %d problems, want %d", len(probs), MaxProblems+1)
	}
	if last := probs[MaxProblems].Message; last != "50 more problems not shown" {
		t.Errorf("last problem = %q", last)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Message: "m"}, "m"},
		{Problem{File: "a.cedar", Message: "m"}, "a.cedar: m"},
		{Problem{File: "a.cedar", Line: 3, Message: "m"}, "a.cedar:3: m"},
		{Problem{File: "a.cedar", Line: 3, Column: 7, Policy: "p", Message: "m"}, `a.cedar:3:7: policy "p": m`},
	}
	for _, tt := range tests {
		t.Run("formats "+tt.want, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Errorf("String() = %q", got)
			}
		})
	}
	t.Run("a CompileError with several problems lists them one per line", func(t *testing.T) {
		e := &CompileError{Problems: []Problem{{Message: "a"}, {Message: "b"}}}
		if got := e.Error(); got != "2 problems:\n  a\n  b" {
			t.Errorf("Error() = %q", got)
		}
	})
}

func TestKind(t *testing.T) {
	tests := map[string]string{
		"p.cedar":             "policy",
		"s.cedarschema":       "schema",
		"s.cedarschema.json":  "schema",
		"e.entities.json":     "entities",
		"x.json":              "",
		"cedar":               "",
		"dir/nested/p.cedar":  "policy",
		"p.cedar.swp":         "",
		"entities.json":       "",
		"a.entities.json.bak": "",
	}
	for name, want := range tests {
		t.Run(fmt.Sprintf("%s is %q", name, want), func(t *testing.T) {
			if got := Kind(name); got != want {
				t.Errorf("Kind = %q", got)
			}
		})
	}
}

// FuzzCompile feeds arbitrary bytes to Compile as a policy file, an
// entities file and a schema. It must never panic, and every failure must be
// a *CompileError whose positions lie inside the file.
func FuzzCompile(f *testing.F) {
	for _, dir := range []string{"valid", "syntax-error", "schema-type-error", "entity-schema-mismatch", "entities-syntax-error", "entities-type-error", "no-schema", "json-schema"} {
		for _, file := range readBundle(f, dir).Files {
			f.Add(file.Data)
		}
	}
	f.Add([]byte(`permit(principal, action, resource) when { "((" == "\"" // ((` + "\n};"))
	f.Add([]byte("@id(\"\")permit(principal,action,resource);"))
	f.Add([]byte("[null]"))
	f.Add([]byte("null"))
	f.Add([]byte(strings.Repeat("(", 5000)))
	f.Fuzz(func(t *testing.T, data []byte) {
		bundles := []Bundle{
			{Files: []File{{Name: "f.cedar", Data: data}}},
			{Files: []File{{Name: "f.entities.json", Data: data}, {Name: "p.cedar", Data: []byte(anyPolicy)}}},
			{Files: []File{{Name: "f.cedarschema", Data: data}, {Name: "p.cedar", Data: []byte(anyPolicy)}}},
		}
		for _, b := range bundles {
			snap, err := Compile(b)
			if err == nil {
				if snap == nil || snap.Index == nil {
					t.Fatal("Compile returned neither a snapshot nor an error")
				}
				continue
			}
			var ce *CompileError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %T %v is not a *CompileError with problems", err, err)
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, p := range ce.Problems {
				if p.Line < 0 || p.Column < 0 || p.Line > lines || p.Message == "" {
					t.Fatalf("problem %#v is outside a file of %d lines", p, lines)
				}
			}
		}
	})
}
