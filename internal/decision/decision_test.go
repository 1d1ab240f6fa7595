package decision_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/policy"
)

const decidePolicies = `
@id("editors")
@reason("editors may edit")
permit(principal in Role::"editor", action == Action::"edit", resource is Doc);

@id("owners")
permit(principal, action, resource is Doc) when { resource.owner == principal };

@id("risky")
forbid(principal, action, resource) when { context.risk.level >= 3 };

@id("locked")
forbid(principal, action, resource) when { resource.locked };

@id("z-also-editors")
permit(principal in Role::"editor", action, resource is Doc);
`

func decideSnapshot(t testing.TB) *policy.Snapshot {
	t.Helper()
	entities := `[
	  {"uid": {"type": "Role", "id": "editor"}, "parents": [], "attrs": {}},
	  {"uid": {"type": "User", "id": "alice"}, "parents": [{"type": "Role", "id": "editor"}], "attrs": {}},
	  {"uid": {"type": "User", "id": "bob"}, "parents": [], "attrs": {}},
	  {"uid": {"type": "Doc", "id": "d1"}, "parents": [], "attrs": {"owner": {"__entity": {"type": "User", "id": "bob"}}, "locked": false}},
	  {"uid": {"type": "Doc", "id": "d2"}, "parents": [], "attrs": {"locked": true}}
	]`
	snap, err := policy.Compile(policy.Bundle{Files: []policy.File{
		{Name: "p.cedar", Data: []byte(decidePolicies)},
		{Name: "e.entities.json", Data: []byte(entities)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func risk(level int) types.Record {
	return types.NewRecord(types.RecordMap{"risk": types.NewRecord(types.RecordMap{"level": types.Long(level)})})
}

func TestDecide(t *testing.T) {
	snap := decideSnapshot(t)
	uid := types.NewEntityUID
	tests := []struct {
		name        string
		req         decision.Request
		allow       bool
		determining []string
		effect      string
		errors      []string
	}{
		{
			name:        "an editor is allowed by every satisfied permit, sorted by ID",
			req:         decision.Request{Principal: uid("User", "alice"), Action: uid("Action", "edit"), Resource: uid("Doc", "d1"), Context: risk(1)},
			allow:       true,
			determining: []string{"editors", "z-also-editors"},
			effect:      "permit",
		},
		{
			name:        "a satisfied forbid overrides permits",
			req:         decision.Request{Principal: uid("User", "alice"), Action: uid("Action", "edit"), Resource: uid("Doc", "d1"), Context: risk(5)},
			determining: []string{"risky"},
			effect:      "forbid",
		},
		{
			name:   "no satisfied permit is a default deny without reasons",
			req:    decision.Request{Principal: uid("User", "carol"), Action: uid("Action", "edit"), Resource: uid("Doc", "d1"), Context: risk(1)},
			errors: nil,
		},
		{
			name:   "evaluation errors are reported, sorted by policy ID, and the erroring policies do not apply",
			req:    decision.Request{Principal: uid("User", "carol"), Action: uid("Action", "edit"), Resource: uid("Doc", "d9")},
			errors: []string{"locked", "owners", "risky"},
		},
		{
			name:   "an erroring forbid denies even when a permit is satisfied",
			req:    decision.Request{Principal: uid("User", "alice"), Action: uid("Action", "edit"), Resource: uid("Doc", "d1")},
			errors: []string{"risky"},
		},
		{
			name: "request entities take the place of stored ones",
			req: decision.Request{
				Principal: uid("User", "bob"), Action: uid("Action", "edit"), Resource: uid("Doc", "d1"), Context: risk(1),
				Entities: types.EntityMap{uid("User", "bob"): {UID: uid("User", "bob"), Parents: types.NewEntityUIDSet(uid("Role", "editor"))}},
			},
			allow:       true,
			determining: []string{"editors", "owners", "z-also-editors"},
			effect:      "permit",
		},
		{
			name: "a request entity can take away a stored role",
			req: decision.Request{
				Principal: uid("User", "alice"), Action: uid("Action", "edit"), Resource: uid("Doc", "d1"), Context: risk(1),
				Entities: types.EntityMap{uid("User", "alice"): {UID: uid("User", "alice")}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, decide := range map[string]func(*policy.Snapshot, decision.Request) decision.Result{
				"indexed": decision.Decide, "unindexed": decision.DecideUnindexed,
			} {
				res := decide(snap, tt.req)
				if res.Allow != tt.allow {
					t.Errorf("%s: allow = %v, want %v", name, res.Allow, tt.allow)
				}
				if got := res.Reasons(); !slices.Equal(got, tt.determining) && len(got)+len(tt.determining) > 0 {
					t.Errorf("%s: determining = %q, want %q", name, got, tt.determining)
				}
				for _, p := range res.Determining {
					if p.Effect != tt.effect {
						t.Errorf("%s: %s has effect %q, want %q", name, p.ID, p.Effect, tt.effect)
					}
				}
				var errs []string
				for _, e := range res.Errors {
					if e.Message == "" {
						t.Errorf("%s: error of %s has no message", name, e.PolicyID)
					}
					errs = append(errs, e.PolicyID)
				}
				if !slices.Equal(errs, tt.errors) {
					t.Errorf("%s: errors from %q, want %q", name, errs, tt.errors)
				}
				if res.PolicyVersion != snap.ID {
					t.Errorf("%s: policy version = %q, want %q", name, res.PolicyVersion, snap.ID)
				}
			}
		})
	}
}

func TestDecideReportsAnnotationsAndWork(t *testing.T) {
	snap := decideSnapshot(t)
	req := decision.Request{Principal: types.NewEntityUID("User", "alice"), Action: types.NewEntityUID("Action", "edit"), Resource: types.NewEntityUID("Doc", "d1"), Context: risk(1)}
	res := decision.Decide(snap, req)
	t.Run("annotations of determining policies are included", func(t *testing.T) {
		if got := res.Determining[0].Annotations; got["reason"] != "editors may edit" || got["id"] != "editors" {
			t.Errorf("annotations = %v", got)
		}
		if res.Determining[1].Annotations["reason"] != "" {
			t.Errorf("a policy without @reason has one: %v", res.Determining[1].Annotations)
		}
	})
	t.Run("the index hands Cedar only the policies whose scope matches", func(t *testing.T) {
		if res.Evaluated != 5 {
			t.Errorf("evaluated %d policies for an editor editing a Doc; want all 5", res.Evaluated)
		}
		// Only the unscoped forbids apply to a folder.
		folder := req
		folder.Resource = types.NewEntityUID("Folder", "f")
		if n := decision.Decide(snap, folder).Evaluated; n != 2 {
			t.Errorf("evaluated %d policies for a folder; want 2", n)
		}
		if n := decision.DecideUnindexed(snap, folder).Evaluated; n != 5 {
			t.Errorf("evaluated %d policies without the index; want 5", n)
		}
	})
}

func TestDecideWithoutPolicies(t *testing.T) {
	req := decision.Request{Principal: types.NewEntityUID("User", "a"), Action: types.NewEntityUID("Action", "b"), Resource: types.NewEntityUID("Doc", "c")}
	for name, decide := range map[string]func(*policy.Snapshot, decision.Request) decision.Result{
		"Decide": decision.Decide, "DecideUnindexed": decision.DecideUnindexed,
	} {
		t.Run(name+" denies with an error when there is no policy set", func(t *testing.T) {
			res := decide(nil, req)
			if res.Allow || len(res.Errors) != 1 {
				t.Errorf("result = %+v; want a deny with one error", res)
			}
		})
		t.Run(name+" denies without errors when the policy set is empty", func(t *testing.T) {
			// Compile refuses an empty set; build one by hand.
			snap := &policy.Snapshot{ID: "empty", Index: policy.NewIndex(nil)}
			if res := decide(snap, req); res.Allow || len(res.Errors) != 0 || len(res.Determining) != 0 {
				t.Errorf("result = %+v; want a default deny", res)
			}
		})
	}
}

func ExampleDecide() {
	snap, err := policy.Compile(policy.Bundle{Files: []policy.File{{
		Name: "policies.cedar",
		Data: []byte(`
@id("editors-write")
permit(principal in Role::"editor", action == Action::"write", resource)
when { context.device.compliant };`),
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	alice := types.NewEntityUID("User", "alice")
	res := decision.Decide(snap, decision.Request{
		Principal: alice,
		Action:    types.NewEntityUID("Action", "write"),
		Resource:  types.NewEntityUID("Doc", "report"),
		Context:   types.NewRecord(types.RecordMap{"device": types.NewRecord(types.RecordMap{"compliant": types.True})}),
		// The principal and its roles come from the request, for example
		// from token claims.
		Entities: types.EntityMap{alice: {UID: alice, Parents: types.NewEntityUIDSet(types.NewEntityUID("Role", "editor"))}},
	})
	fmt.Println(res.Allow, res.Reasons())
	// Output: true [editors-write]
}
