package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// indexOf compiles policies given as Cedar text, one @id'd policy per entry.
func indexOf(t testing.TB, policies map[string]string) *Index {
	t.Helper()
	var b strings.Builder
	for id, src := range policies {
		fmt.Fprintf(&b, "@id(%q)\n%s\n", id, src)
	}
	list, err := cedar.NewPolicyListFromBytes("test.cedar", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	m := map[cedar.PolicyID]*cedar.Policy{}
	for _, p := range list {
		m[cedar.PolicyID(p.Annotations()["id"])] = p
	}
	return NewIndex(m)
}

func uid(typ, id string) types.EntityUID {
	return types.NewEntityUID(types.EntityType(typ), types.String(id))
}

func entity(u types.EntityUID, parents ...types.EntityUID) types.Entity {
	return types.Entity{UID: u, Parents: types.NewEntityUIDSet(parents...)}
}

func store(es ...types.Entity) types.EntityMap {
	m := types.EntityMap{}
	for _, e := range es {
		m[e.UID] = e
	}
	return m
}

func selected(s Selection) []string {
	var ids []string
	for id := range s.All() {
		ids = append(ids, string(id))
	}
	return ids
}

func TestSelect(t *testing.T) {
	ix := indexOf(t, map[string]string{
		"all":            `permit(principal, action, resource);`,
		"alice-eq":       `permit(principal == User::"alice", action, resource);`,
		"bob-eq":         `permit(principal == User::"bob", action, resource);`,
		"in-staff":       `permit(principal in Group::"staff", action, resource);`,
		"in-company":     `permit(principal in Group::"company", action, resource);`,
		"is-user":        `permit(principal is User, action, resource);`,
		"is-group":       `permit(principal is Group, action, resource);`,
		"user-in-staff":  `permit(principal is User in Group::"staff", action, resource);`,
		"group-in-staff": `permit(principal is Group in Group::"staff", action, resource);`,
		"read":           `permit(principal, action == Action::"read", resource);`,
		"in-readers":     `permit(principal, action in Action::"readers", resource);`,
		"in-set":         `permit(principal, action in [Action::"write", Action::"readers"], resource);`,
		"empty-set":      `permit(principal, action in [], resource);`,
		"doc-in-folder":  `forbid(principal, action, resource in Folder::"private") when { true };`,
		"ghost-parent":   `permit(principal in Group::"ghost", action, resource);`,
		"all-three":      `permit(principal == User::"alice", action == Action::"read", resource == Doc::"d1");`,
	})
	ents := store(
		entity(uid("User", "alice"), uid("Group", "staff"), uid("Group", "ghost")),
		entity(uid("Group", "staff"), uid("Group", "company")),
		entity(uid("Group", "company")),
		entity(uid("Action", "read"), uid("Action", "readers")),
		entity(uid("Doc", "d1"), uid("Folder", "private")),
		// A cycle: the walk must terminate.
		entity(uid("Group", "loop-a"), uid("Group", "loop-b")),
		entity(uid("Group", "loop-b"), uid("Group", "loop-a")),
	)
	tests := []struct {
		name                        string
		principal, action, resource types.EntityUID
		want                        []string
	}{
		{
			name:      "alice reading d1 matches her own, group, type, action group and folder scopes",
			principal: uid("User", "alice"), action: uid("Action", "read"), resource: uid("Doc", "d1"),
			want: []string{"alice-eq", "all", "all-three", "doc-in-folder", "ghost-parent", "in-company", "in-readers", "in-set", "in-staff", "is-user", "read", "user-in-staff"},
		},
		{
			name:      "an unknown user matches only unscoped and type scopes",
			principal: uid("User", "mallory"), action: uid("Action", "delete"), resource: uid("Doc", "d2"),
			want: []string{"all", "is-user"},
		},
		{
			name:      "a group is in itself and its ancestors",
			principal: uid("Group", "staff"), action: uid("Action", "write"), resource: uid("Doc", "d2"),
			want: []string{"all", "group-in-staff", "in-company", "in-set", "in-staff", "is-group"},
		},
		{
			name:      "a cyclic hierarchy terminates",
			principal: uid("Group", "loop-a"), action: uid("Action", "x"), resource: uid("Doc", "x"),
			want: []string{"all", "is-group"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := selected(ix.Select(ents, tt.principal, tt.action, tt.resource))
			if !slices.Equal(got, tt.want) {
				t.Errorf("selected %q\n want %q", got, tt.want)
			}
		})
	}
}

func TestSelectWithManyAncestors(t *testing.T) {
	// A user in 200 groups, each in a chain of 3, goes past the linear scan
	// of ancestors into the map.
	var es []types.Entity
	var groups []types.EntityUID
	for i := range 200 {
		g := uid("Group", fmt.Sprintf("g%d", i))
		groups = append(groups, g)
		es = append(es,
			entity(g, uid("Group", fmt.Sprintf("g%d-up", i))),
			entity(uid("Group", fmt.Sprintf("g%d-up", i)), uid("Group", "top"), uid("Group", "g0")))
	}
	es = append(es, entity(uid("User", "u"), groups...))
	ents := store(es...)
	ix := indexOf(t, map[string]string{
		"top":     `permit(principal in Group::"top", action, resource);`,
		"g150-up": `permit(principal in Group::"g150-up", action, resource);`,
		"in-set":  `permit(principal, action in [Action::"a"], resource) when { principal in Group::"g7" };`,
		"other":   `permit(principal in Group::"nope", action, resource);`,
	})
	got := selected(ix.Select(ents, uid("User", "u"), uid("Action", "a"), uid("Doc", "d")))
	if want := []string{"g150-up", "in-set", "top"}; !slices.Equal(got, want) {
		t.Errorf("selected %q, want %q", got, want)
	}
}

func TestEmptyIndexes(t *testing.T) {
	for name, ix := range map[string]*Index{"nil": nil, "empty": NewIndex(nil)} {
		t.Run(fmt.Sprintf("a %s index selects nothing and finds nothing", name), func(t *testing.T) {
			s := ix.Select(nil, uid("User", "a"), uid("Action", "b"), uid("Doc", "c"))
			if s.Len() != 0 || ix.Len() != 0 || len(selected(s)) != 0 {
				t.Error("selected policies from an empty index")
			}
			for range ix.All() {
				t.Error("All yielded a policy")
			}
			if ix.Get("x") != nil || ix.Annotations("x") != nil || s.Get("x") != nil {
				t.Error("found a policy in an empty index")
			}
			if dec, _ := cedar.Authorize(s, nil, cedar.Request{}); dec != cedar.Deny {
				t.Error("an empty selection allowed")
			}
		})
	}
}

func TestIndexLookups(t *testing.T) {
	ix := indexOf(t, map[string]string{
		"b": `@reason("because") permit(principal, action, resource);`,
		"a": `forbid(principal, action, resource);`,
		"c": `permit(principal, action, resource);`,
	})
	t.Run("All yields policies in ID order", func(t *testing.T) {
		var ids []cedar.PolicyID
		for id := range ix.All() {
			ids = append(ids, id)
		}
		if !slices.Equal(ids, []cedar.PolicyID{"a", "b", "c"}) {
			t.Errorf("ids = %q", ids)
		}
	})
	t.Run("All stops when the consumer stops", func(t *testing.T) {
		n := 0
		for range ix.All() {
			n++
			break
		}
		s := ix.Select(nil, uid("U", "u"), uid("Action", "a"), uid("R", "r"))
		for range s.All() {
			n++
			break
		}
		if n != 2 {
			t.Errorf("iterated %d times", n)
		}
	})
	t.Run("Get and Annotations find policies by ID", func(t *testing.T) {
		if p := ix.Get("a"); p == nil || p.Effect() != cedar.Forbid {
			t.Errorf("Get(a) = %v", p)
		}
		if ix.Get("z") != nil {
			t.Error("Get(z) found a policy")
		}
		if got := ix.Annotations("b"); got["reason"] != "because" || got["id"] != "b" {
			t.Errorf("Annotations(b) = %v", got)
		}
		s := ix.Select(nil, uid("U", "u"), uid("Action", "a"), uid("R", "r"))
		if s.Get("c") == nil || s.Annotations("b")["reason"] != "because" {
			t.Error("a selection does not resolve IDs of its index")
		}
	})
}

func TestSelectAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are checked in full runs")
	}
	ix := indexOf(t, map[string]string{
		"editors": `permit(principal in Role::"editor", action, resource);`,
		"owner":   `permit(principal, action, resource is Doc) when { resource.owner == principal };`,
		"other":   `permit(principal == User::"bob", action, resource);`,
	})
	ents := store(
		entity(uid("User", "alice"), uid("Role", "editor"), uid("Group", "staff")),
		entity(uid("Role", "editor"), uid("Role", "viewer")),
		entity(uid("Doc", "d"), uid("Folder", "f")),
	)
	var s Selection
	allocs := testing.AllocsPerRun(100, func() {
		s = ix.Select(ents, uid("User", "alice"), uid("Action", "read"), uid("Doc", "d"))
	})
	if s.Len() != 2 {
		t.Fatalf("selected %d policies, want 2", s.Len())
	}
	// One allocation holds the selected positions; the lineages and
	// candidate lists stay on the stack.
	if allocs > 1 {
		t.Errorf("Select allocates %v times per call, want at most 1", allocs)
	}
}

// A Selection hands Cedar the selected policies without their scopes (which
// Select has checked) and otherwise unchanged; the unscoped copy is made
// once, however many requests select the policy at the same time.
func TestSelectionYieldsPoliciesWithoutTheirScopes(t *testing.T) {
	ix := indexOf(t, map[string]string{
		"scoped":   "@acr_values(\"mfa\")\nforbid(principal in Group::\"staff\", action == Action::\"read\", resource is Doc) when { context.x } unless { context.y };",
		"unscoped": `permit(principal, action, resource) when { context.z };`,
	})
	ents := store(entity(uid("User", "alice"), uid("Group", "staff")))
	sel := func() map[cedar.PolicyID]*cedar.Policy {
		out := map[cedar.PolicyID]*cedar.Policy{}
		for id, p := range ix.Select(ents, uid("User", "alice"), uid("Action", "read"), uid("Doc", "d")).All() {
			out[id] = p
		}
		return out
	}
	got := sel()
	if len(got) != 2 {
		t.Fatalf("selected %v, want both policies", got)
	}
	for id, p := range got {
		orig := ix.Get(id)
		a, o := p.AST(), orig.AST()
		if string(p.MarshalCedar()) == string(orig.MarshalCedar()) != (id == "unscoped") {
			t.Errorf("%s: yielded\n%s\nfor\n%s", id, p.MarshalCedar(), orig.MarshalCedar())
		}
		if a.Effect != o.Effect || a.Position != o.Position || len(a.Conditions) != len(o.Conditions) || len(a.Annotations) != len(o.Annotations) {
			t.Errorf("%s: effect, position, conditions or annotations changed:\n%s\nfor\n%s", id, p.MarshalCedar(), orig.MarshalCedar())
		}
		want := "permit ( principal, action, resource )"
		if id == "scoped" {
			want = "forbid ( principal, action, resource )"
		}
		if !strings.Contains(string(p.MarshalCedar()), want) {
			t.Errorf("%s: yielded\n%s\nwant the scope %q", id, p.MarshalCedar(), want)
		}
	}
	if ix.Get("unscoped") != got["unscoped"] {
		t.Error("a policy without a scope was copied")
	}

	t.Run("concurrent selections share one unscoped copy", func(t *testing.T) {
		ix := indexOf(t, map[string]string{"p": `permit(principal in Group::"staff", action, resource);`})
		results := make(chan *cedar.Policy, 16)
		for range cap(results) {
			go func() {
				for _, p := range ix.Select(ents, uid("User", "alice"), uid("Action", "read"), uid("Doc", "d")).All() {
					results <- p
				}
			}()
		}
		first := <-results
		for range cap(results) - 1 {
			if p := <-results; p != first {
				t.Fatal("two unscoped copies of one policy")
			}
		}
	})
}
