package decision_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/policy"
)

// benchPolicies are the ten policies every benchmark set starts with: RBAC
// through role parents, ABAC on resource attributes and conditions on the
// request context, as a gateway would hand them.
const benchPolicies = `
@id("editors-write")
permit(principal in Role::"editor", action in [Action::"read", Action::"write"], resource is Doc)
when { context.device.compliant && context.risk.level < 3 };

@id("owner-full")
permit(principal, action, resource is Doc)
when { resource has owner && resource.owner == principal };

@id("viewers-read")
permit(principal in Role::"viewer", action == Action::"read", resource in Folder::"shared");

@id("risk-high")
forbid(principal, action, resource)
when { context.risk.level >= 4 };

@id("noncompliant-write")
forbid(principal, action == Action::"write", resource)
unless { context.device.compliant };

@id("admin-hours")
permit(principal in Role::"admin", action, resource)
when { context.request.time >= 1700000000 && context.request.time < 1900000000 };

@id("public-read")
permit(principal, action == Action::"read", resource is Doc)
when { resource has public && resource.public };

@id("tenant-isolation")
forbid(principal is User, action, resource is Doc)
unless { principal has tenant && resource has tenant && principal.tenant == resource.tenant };

@id("alice-home")
permit(principal == User::"alice", action == Action::"delete", resource in Folder::"alice-home");

@id("suspended")
forbid(principal in Group::"suspended", action, resource);
`

// benchSet returns the base policies plus n-10 policies scoped to other
// principals and resources, the stored entities and the request.
func benchSet(tb testing.TB, n int) (*policy.Snapshot, decision.Request) {
	tb.Helper()
	var b strings.Builder
	b.WriteString(benchPolicies)
	actions := []string{"read", "write", "delete"}
	for i := range n - 10 {
		a := actions[i%len(actions)]
		switch i % 4 {
		case 0, 1:
			fmt.Fprintf(&b, "@id(\"grant-%d\")\npermit(principal == User::\"u%d\", action == Action::%q, resource == Doc::\"d%d\")\nwhen { context.risk.level < 2 };\n", i, i, a, i)
		case 2:
			fmt.Fprintf(&b, "@id(\"team-%d\")\npermit(principal in Group::\"team-%d\", action in [Action::\"read\", Action::%q], resource in Folder::\"f%d\")\nwhen { context.device.compliant };\n", i, i, a, i)
		case 3:
			fmt.Fprintf(&b, "@id(\"block-%d\")\nforbid(principal == User::\"u%d\", action, resource is Doc)\nwhen { resource.owner != principal };\n", i, i)
		}
	}
	snap, err := policy.Compile(policy.Bundle{Files: []policy.File{{Name: "policies.cedar", Data: []byte(b.String())}}})
	if err != nil {
		tb.Fatal(err)
	}
	if snap.Index.Len() != n {
		tb.Fatalf("compiled %d policies, want %d", snap.Index.Len(), n)
	}

	uid := types.NewEntityUID
	ents := types.EntityMap{}
	put := func(u types.EntityUID, attrs types.RecordMap, parents ...types.EntityUID) {
		ents[u] = types.Entity{UID: u, Parents: types.NewEntityUIDSet(parents...), Attributes: types.NewRecord(attrs)}
	}
	for _, r := range []string{"editor", "viewer", "admin"} {
		put(uid("Role", types.String(r)), nil)
	}
	put(uid("Group", "staff"), nil)
	put(uid("Group", "suspended"), nil)
	put(uid("Folder", "root"), nil)
	put(uid("Folder", "shared"), nil, uid("Folder", "root"))
	put(uid("Doc", "report"), types.RecordMap{"owner": uid("User", "bob"), "tenant": types.String("acme"), "public": types.False}, uid("Folder", "shared"))
	for i := range n - 10 {
		put(uid("Folder", types.String(fmt.Sprintf("f%d", i))), nil, uid("Folder", "root"))
		put(uid("Doc", types.String(fmt.Sprintf("d%d", i))), types.RecordMap{"owner": uid("User", types.String(fmt.Sprintf("u%d", i))), "tenant": types.String("acme")}, uid("Folder", types.String(fmt.Sprintf("f%d", i))))
	}
	snap.Entities = ents

	// The principal is built per request from token claims.
	alice := uid("User", "alice")
	req := decision.Request{
		Principal: alice,
		Action:    uid("Action", "write"),
		Resource:  uid("Doc", "report"),
		Context: types.NewRecord(types.RecordMap{
			"request": types.NewRecord(types.RecordMap{"time": types.Long(1800000000), "method": types.String("PUT"), "path": types.String("/docs/report")}),
			"risk":    types.NewRecord(types.RecordMap{"level": types.Long(1), "score": types.Long(12)}),
			"device":  types.NewRecord(types.RecordMap{"compliant": types.True, "managed": types.True}),
		}),
		Entities: types.EntityMap{alice: {
			UID:        alice,
			Parents:    types.NewEntityUIDSet(uid("Role", "editor"), uid("Group", "staff")),
			Attributes: types.NewRecord(types.RecordMap{"tenant": types.String("acme"), "email": types.String("alice@example.com")}),
		}},
	}
	return snap, req
}

var benchSizes = []int{10, 1000, 10000}

func BenchmarkDecide(b *testing.B) {
	for _, n := range benchSizes {
		snap, req := benchSet(b, n)
		res := decision.Decide(snap, req)
		if !res.Allow || len(res.Errors) > 0 || strings.Join(res.Reasons(), ",") != "editors-write" {
			b.Fatalf("unexpected decision %+v", res)
		}
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				decision.Decide(snap, req)
			}
			b.ReportMetric(float64(res.Evaluated), "evaluated/op")
		})
	}
}

// BenchmarkCedarRaw is the baseline: cedar-go's Authorize over an unindexed
// PolicySet of the same policies, with the principal merged into the
// entities beforehand.
func BenchmarkCedarRaw(b *testing.B) {
	for _, n := range benchSizes {
		snap, req := benchSet(b, n)
		ps := cedar.NewPolicySet()
		for id, p := range snap.Index.All() {
			ps.Add(id, p)
		}
		ents := maps.Clone(snap.Entities)
		maps.Copy(ents, req.Entities)
		creq := cedar.Request{Principal: req.Principal, Action: req.Action, Resource: req.Resource, Context: req.Context}
		if dec, _ := cedar.Authorize(ps, ents, creq); dec != cedar.Allow {
			b.Fatalf("unexpected decision %v", dec)
		}
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cedar.Authorize(ps, ents, creq)
			}
		})
	}
}
