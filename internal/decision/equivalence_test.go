package decision_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/policy"
)

// The differential test and FuzzIndexEquivalence share one generator of
// policy sets, entity hierarchies and requests. Every random choice goes
// through a chooser, so the seeded test draws from math/rand/v2 and the fuzz
// target draws from the fuzz bytes.

type chooser interface {
	IntN(n int) int
}

// byteChooser turns fuzz input into choices; once the bytes run out every
// choice is 0, which always terminates generation.
type byteChooser struct {
	b []byte
}

func (c *byteChooser) IntN(n int) int {
	if n <= 1 || len(c.b) == 0 {
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v % n
}

func pick[T any](c chooser, xs []T) T { return xs[c.IntN(len(xs))] }

// chance reports true with probability pct/100.
func chance(c chooser, pct int) bool { return c.IntN(100) < pct }

// The universe is deliberately small so that scopes, hierarchies and
// requests collide often.
var (
	entityTypes = []types.EntityType{"User", "Group", "Role", "Doc", "Folder", "NS::Thing"}
	entityIDs   = []types.String{"a", "b", "c"}
	actionIDs   = []types.String{"read", "write", "delete", "readers", "writers", "all"}
)

func randUID(c chooser) types.EntityUID {
	if chance(c, 8) {
		// Never stored: a missing entity or a missing parent.
		return types.NewEntityUID(pick(c, entityTypes), "ghost")
	}
	return types.NewEntityUID(pick(c, entityTypes), pick(c, entityIDs))
}

// Requests mostly name principals and resources of these types, and scopes
// mostly refer to them, so that scopes match often enough to reach the
// conditions.
var (
	principalTypes = []types.EntityType{"User", "Group"}
	resourceTypes  = []types.EntityType{"Doc", "Folder"}
)

func randUIDOf(c chooser, prefer []types.EntityType) types.EntityUID {
	if chance(c, 75) {
		return types.NewEntityUID(pick(c, prefer), pick(c, entityIDs))
	}
	return randUID(c)
}

func randTypeOf(c chooser, prefer []types.EntityType) types.EntityType {
	if chance(c, 75) {
		return pick(c, prefer)
	}
	return pick(c, entityTypes)
}

func randAction(c chooser) types.EntityUID {
	if chance(c, 5) {
		return types.NewEntityUID("Action", "undeclared")
	}
	return types.NewEntityUID("Action", pick(c, actionIDs))
}

func cedarUID(u types.EntityUID) string {
	return fmt.Sprintf("%s::%q", u.Type, string(u.ID))
}

// genEntities builds an entity store: most UIDs of the universe, a
// multi-level parent graph that is acyclic by construction (an entity only
// points at entities earlier in a random order), parents that do not exist
// and, in a few sets, a cycle.
func genEntities(c chooser) types.EntityMap {
	var uids []types.EntityUID
	for _, t := range entityTypes {
		for _, id := range entityIDs {
			if chance(c, 75) {
				uids = append(uids, types.NewEntityUID(t, id))
			}
		}
	}
	for _, id := range actionIDs {
		uids = append(uids, types.NewEntityUID("Action", id))
	}
	for i := len(uids) - 1; i > 0; i-- { // Fisher-Yates with the chooser
		j := c.IntN(i + 1)
		uids[i], uids[j] = uids[j], uids[i]
	}
	em := make(types.EntityMap, len(uids))
	for i, u := range uids {
		var parents []types.EntityUID
		for range c.IntN(3) {
			switch {
			case chance(c, 10):
				parents = append(parents, randUID(c)) // maybe missing
			case i > 0:
				parents = append(parents, uids[c.IntN(i)])
			}
		}
		em[u] = types.Entity{UID: u, Parents: types.NewEntityUIDSet(parents...), Attributes: randAttrs(c)}
	}
	if len(uids) > 1 && chance(c, 10) {
		// A back edge from an early entity to a later one closes a cycle.
		lo, hi := uids[0], uids[len(uids)-1]
		e := em[lo]
		e.Parents = types.NewEntityUIDSet(append(slices.Collect(e.Parents.All()), hi)...)
		em[lo] = e
	}
	return em
}

func randAttrs(c chooser) types.Record {
	m := types.RecordMap{}
	if chance(c, 60) {
		m["owner"] = randUID(c)
	}
	if chance(c, 60) {
		if chance(c, 85) {
			m["level"] = types.Long(c.IntN(5))
		} else {
			m["level"] = types.String("high") // a type error for `>`
		}
	}
	if chance(c, 50) {
		var tags []types.Value
		for range c.IntN(3) {
			tags = append(tags, types.String(pick(c, []string{"x", "y", "z"})))
		}
		m["tags"] = types.NewSet(tags...)
	}
	if chance(c, 50) {
		m["public"] = types.Boolean(chance(c, 50))
	}
	return types.NewRecord(m)
}

func genScope(c chooser, b *strings.Builder, v string, prefer []types.EntityType) {
	switch c.IntN(8) {
	case 0, 1:
		b.WriteString(v)
	case 2, 3:
		fmt.Fprintf(b, "%s == %s", v, cedarUID(randUIDOf(c, prefer)))
	case 4, 5:
		fmt.Fprintf(b, "%s in %s", v, cedarUID(randUIDOf(c, prefer)))
	case 6:
		fmt.Fprintf(b, "%s is %s", v, randTypeOf(c, prefer))
	case 7:
		fmt.Fprintf(b, "%s is %s in %s", v, randTypeOf(c, prefer), cedarUID(randUIDOf(c, prefer)))
	}
}

func genActionScope(c chooser, b *strings.Builder) {
	switch c.IntN(5) {
	case 0, 1:
		b.WriteString("action")
	case 2:
		fmt.Fprintf(b, "action == %s", cedarUID(randAction(c)))
	case 3:
		fmt.Fprintf(b, "action in %s", cedarUID(randAction(c)))
	case 4:
		n := c.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = cedarUID(randAction(c))
		}
		fmt.Fprintf(b, "action in [%s]", strings.Join(parts, ", "))
	}
}

// genCondition returns a condition body. Several raise evaluation errors for
// some entities or contexts (a missing attribute, a type mismatch, an
// overflow), which must be reported identically with and without the index.
func genCondition(c chooser) string {
	n := c.IntN(5)
	switch c.IntN(18) {
	case 0:
		return pick(c, []string{"true", "false"})
	case 1:
		return fmt.Sprintf("principal.level > %d", n)
	case 2:
		return fmt.Sprintf("principal has level && principal.level > %d", n)
	case 3:
		return "resource.owner == principal"
	case 4:
		return "resource has owner && resource.owner == principal"
	case 5:
		return fmt.Sprintf("context.risk.level < %d", n)
	case 6:
		return fmt.Sprintf("context has risk && context.risk.level >= %d", n)
	case 7:
		return "context.device.compliant"
	case 8:
		return fmt.Sprintf("principal in %s", cedarUID(randUIDOf(c, principalTypes)))
	case 9:
		return fmt.Sprintf("resource in %s", cedarUID(randUIDOf(c, resourceTypes)))
	case 10:
		return fmt.Sprintf("action in %s", cedarUID(randAction(c)))
	case 11:
		return fmt.Sprintf("resource.tags.contains(%q)", pick(c, []string{"x", "y"}))
	case 12:
		return "9223372036854775807 + principal.level > 0"
	case 13:
		return fmt.Sprintf("principal is %s", pick(c, entityTypes))
	case 14:
		return fmt.Sprintf("if principal has level then principal.level > %d else context.device.compliant", n)
	case 15:
		return "resource.public"
	case 16:
		return fmt.Sprintf("context.request.time > %d", n*100)
	default:
		return "principal in resource.owner"
	}
}

// genPolicies writes one or two .cedar files; some policies carry an @id,
// the others get Compile's default file:line:col ID.
func genPolicies(c chooser, maxPolicies int) []policy.File {
	files := []policy.File{{Name: "a.cedar"}, {Name: "sub/b.cedar"}}
	var bufs [2]strings.Builder
	n := 1 + c.IntN(maxPolicies) // Compile refuses an empty set
	for i := range n {
		b := &bufs[c.IntN(2)]
		if chance(c, 40) {
			fmt.Fprintf(b, "@id(\"p%d\")\n", i)
		}
		if chance(c, 20) {
			fmt.Fprintf(b, "@reason(\"r%d\")\n", i)
		}
		b.WriteString(pick(c, []string{"permit", "permit", "forbid"}))
		b.WriteString("(\n  ")
		genScope(c, b, "principal", principalTypes)
		b.WriteString(",\n  ")
		genActionScope(c, b)
		b.WriteString(",\n  ")
		genScope(c, b, "resource", resourceTypes)
		b.WriteString("\n)")
		for range c.IntN(3) {
			fmt.Fprintf(b, "\n%s { %s }", pick(c, []string{"when", "when", "unless"}), genCondition(c))
		}
		b.WriteString(";\n\n")
	}
	var out []policy.File
	for i, f := range files {
		if bufs[i].Len() > 0 {
			f.Data = []byte(bufs[i].String())
			out = append(out, f)
		}
	}
	return out
}

func genContext(c chooser) types.Record {
	m := types.RecordMap{}
	if chance(c, 70) {
		lv := types.Value(types.Long(c.IntN(5)))
		if chance(c, 10) {
			lv = types.String("low")
		}
		m["risk"] = types.NewRecord(types.RecordMap{"level": lv})
	}
	if chance(c, 70) {
		m["device"] = types.NewRecord(types.RecordMap{"compliant": types.Boolean(chance(c, 50))})
	}
	if chance(c, 70) {
		m["request"] = types.NewRecord(types.RecordMap{"time": types.Long(c.IntN(500))})
	}
	return types.NewRecord(m)
}

// genOverlay returns request-scoped entities: a principal or resource with
// other parents and attributes than the stored one, or one that is not
// stored at all, and sometimes a new group it points at.
func genOverlay(c chooser, req *decision.Request) {
	if !chance(c, 40) {
		return
	}
	em := types.EntityMap{}
	for _, u := range []types.EntityUID{req.Principal, req.Resource} {
		if !chance(c, 60) {
			continue
		}
		var parents []types.EntityUID
		for range c.IntN(3) {
			parents = append(parents, randUID(c))
		}
		if chance(c, 30) {
			g := types.NewEntityUID("Group", "overlay")
			parents = append(parents, g)
			em[g] = types.Entity{UID: g, Parents: types.NewEntityUIDSet(randUID(c)), Attributes: randAttrs(c)}
		}
		em[u] = types.Entity{UID: u, Parents: types.NewEntityUIDSet(parents...), Attributes: randAttrs(c)}
	}
	if chance(c, 15) {
		// Override a stored group, cutting or changing its parents.
		u := randUID(c)
		em[u] = types.Entity{UID: u, Parents: types.NewEntityUIDSet(), Attributes: randAttrs(c)}
	}
	req.Entities = em
}

func genRequest(c chooser) decision.Request {
	req := decision.Request{
		Principal: randUIDOf(c, principalTypes),
		Action:    randAction(c),
		Resource:  randUIDOf(c, resourceTypes),
		Context:   genContext(c),
	}
	genOverlay(c, &req)
	return req
}

// generated is one policy set, its entities and the requests to try. The
// entities are handed to the snapshot directly: going through entities JSON
// would triple the test's run time and is covered by the policy package.
type generated struct {
	bundle   policy.Bundle
	entities types.EntityMap
	requests []decision.Request
}

func generate(c chooser, maxPolicies, maxRequests int) generated {
	g := generated{bundle: policy.Bundle{Files: genPolicies(c, maxPolicies)}, entities: genEntities(c)}
	for range 1 + c.IntN(maxRequests) {
		g.requests = append(g.requests, genRequest(c))
	}
	return g
}

func (g generated) String() string {
	var b strings.Builder
	for _, f := range g.bundle.Files {
		fmt.Fprintf(&b, "--- %s\n%s\n", f.Name, f.Data)
	}
	ents, _ := json.MarshalIndent(g.entities, "", "  ")
	fmt.Fprintf(&b, "--- entities\n%s\n", ents)
	return b.String()
}

// stats sums what checkEquivalence saw, so that a generator that stops
// producing allows, forbids or errors, or an index that stops pruning, is
// noticed.
type stats struct {
	requests, allows, forbids, errors int
	selected, total                   int
}

func (s *stats) add(o stats) {
	s.requests += o.requests
	s.allows += o.allows
	s.forbids += o.forbids
	s.errors += o.errors
	s.selected += o.selected
	s.total += o.total
}

func describe(r decision.Request) string {
	ents, _ := json.Marshal(r.Entities)
	ctx, _ := json.Marshal(r.Context)
	return fmt.Sprintf("principal=%s action=%s resource=%s context=%s overlay=%s", r.Principal, r.Action, r.Resource, ctx, ents)
}

// checkEquivalence compiles g and asserts for every request that the indexed
// and unindexed decisions agree, and that the index selects exactly the
// policies whose scope matches.
func checkEquivalence(t testing.TB, name string, g generated) (st stats) {
	t.Helper()
	snap, err := policy.Compile(g.bundle)
	if err != nil {
		t.Fatalf("%s: generated bundle does not compile: %v\n%s", name, err, g)
	}
	snap.Entities = g.entities
	scopes := scopeOnly(snap.Index)
	for _, req := range g.requests {
		got := decision.Decide(snap, req)
		want := decision.DecideUnindexed(snap, req)
		if got.Evaluated > want.Evaluated {
			t.Fatalf("%s: index selected %d of %d policies", name, got.Evaluated, want.Evaluated)
		}
		st.requests++
		st.selected += got.Evaluated
		st.total += want.Evaluated
		switch {
		case got.Allow:
			st.allows++
		case len(got.Determining) > 0:
			st.forbids++
		}
		if len(got.Errors) > 0 {
			st.errors++
		}
		got.Evaluated, want.Evaluated = 0, 0
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: indexed and unindexed decisions differ\nrequest: %s\nindexed:   %+v\nunindexed: %+v\n%s", name, describe(req), got, want, g)
		}

		var ents types.EntityGetter = snap.Entities
		if len(req.Entities) > 0 {
			ents = overlayGetter{req.Entities, snap.Entities}
		}
		var sel []string
		for id := range snap.Index.Select(ents, req.Principal, req.Action, req.Resource).All() {
			sel = append(sel, string(id))
		}
		var match []string
		for id, p := range scopes {
			if dec, _ := cedar.Authorize(cedar.PolicyMap{id: p}, ents, cedar.Request{
				Principal: req.Principal, Action: req.Action, Resource: req.Resource, Context: req.Context,
			}); dec == cedar.Allow {
				match = append(match, string(id))
			}
		}
		slices.Sort(match)
		if !slices.Equal(sel, match) {
			t.Fatalf("%s: index selected %q; the policies whose scope matches are %q\nrequest: %s\n%s", name, sel, match, describe(req), g)
		}
	}
	return st
}

// scopeOnly returns, for every policy, a permit with the same scope and no
// conditions: Cedar allows with it exactly when the scope matches.
func scopeOnly(ix *policy.Index) cedar.PolicyMap {
	out := cedar.PolicyMap{}
	for id, p := range ix.All() {
		a := *p.AST()
		a.Effect = ast.EffectPermit
		a.Conditions = nil
		a.Annotations = nil
		out[id] = cedar.NewPolicyFromAST(&a)
	}
	return out
}

type overlayGetter struct{ top, base types.EntityMap }

func (o overlayGetter) Get(u types.EntityUID) (types.Entity, bool) {
	if e, ok := o.top[u]; ok {
		return e, true
	}
	return o.base.Get(u)
}

// TestIndexedDecisionsEqualUnindexed is the differential test of the scope
// index. A failure names the set and prints the policies, entities and
// request, which reproduce it (the seed is fixed).
func TestIndexedDecisionsEqualUnindexed(t *testing.T) {
	const seed = 20250101
	sets := 3000
	if testing.Short() {
		sets = 400
	}
	var st stats
	for i := range sets {
		g := generate(rand.New(rand.NewPCG(seed, uint64(i))), 14, 6)
		st.add(checkEquivalence(t, fmt.Sprintf("set %d of seed %d", i, seed), g))
		if t.Failed() {
			return
		}
	}
	t.Logf("%d sets, %d requests: %d allows, %d forbids, %d with errors; the index handed Cedar %d of %d policies",
		sets, st.requests, st.allows, st.forbids, st.errors, st.selected, st.total)
	if st.allows == 0 || st.forbids == 0 || st.errors == 0 {
		t.Errorf("the generator is too narrow: %d allows, %d forbids, %d with errors", st.allows, st.forbids, st.errors)
	}
	if st.total == 0 || st.selected*2 > st.total {
		t.Errorf("the index selected %d of %d policies; expected it to prune most", st.selected, st.total)
	}
}

func FuzzIndexEquivalence(f *testing.F) {
	// Seeds: seeded random streams of a few sizes, and hand-picked shapes.
	for i := range uint64(8) {
		r := rand.New(rand.NewPCG(7, i))
		seed := make([]byte, 64*(i+1))
		for j := range seed {
			seed[j] = byte(r.IntN(256))
		}
		f.Add(seed)
	}
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 1, 2, 4, 4, 4, 4, 4})
	f.Add(bytes.Repeat([]byte{0xff}, 200))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		checkEquivalence(t, "fuzz input", generate(&byteChooser{b: data}, 10, 4))
	})
}
