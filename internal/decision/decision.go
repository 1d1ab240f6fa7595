// Package decision is Vigil's pure decision core: given a compiled policy
// snapshot and a request, it returns the decision, the policies that
// determined it and any evaluation errors. It performs no I/O, reads no
// clock and keeps no state; the caller supplies everything, including the
// current time inside the request context. Default deny: an evaluation error
// never turns into an allow.
package decision

import (
	"iter"
	"slices"
	"strings"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/policy"
)

// Request is one authorization question in Cedar terms.
type Request struct {
	Principal types.EntityUID
	Action    types.EntityUID
	Resource  types.EntityUID
	Context   types.Record
	// Entities are request-scoped entities that take the place of stored
	// ones with the same UID (for example a principal built from token
	// claims, or an AuthZEN subject with properties overlaid).
	Entities types.EntityMap
	// Identity, when known, names the caller in the terms live state is
	// keyed by (issuer, subject, session, token, device). Live-state guards
	// and context are looked up with it.
	Identity *Identity
	// MergeLiveContext asks the engine to merge live-state facts into
	// context.session, context.device and context.risk (AuthZEN requests;
	// the gateway builds those records itself).
	MergeLiveContext bool
}

// Identity is who is asking, as live state knows them.
type Identity struct {
	Issuer    string
	Subject   string
	Email     string
	SessionID string
	TokenID   string
	DeviceID  string
	ClientID  string
	// IssuedAt is the token's iat; revocations apply to tokens issued
	// before the revocation time.
	IssuedAt time.Time
}

// Policy is a policy that determined a decision.
type Policy struct {
	ID     string
	Effect string // "permit" or "forbid"
	// Annotations is shared with every other decision of the same policy
	// snapshot and must not be modified.
	Annotations map[string]string
}

// EvalError is an error raised while evaluating one policy. The policy is
// treated as not satisfied.
type EvalError struct {
	PolicyID string `json:"policy"`
	Message  string `json:"message"`
}

// Result is the outcome of Decide. Any evaluation error denies: Allow is
// true only when a permit is satisfied, no forbid is, and no policy in scope
// failed to evaluate.
type Result struct {
	Allow bool
	// Determining are the satisfied forbid policies when denied by a
	// forbid, or the satisfied permit policies when allowed, sorted by ID.
	// Empty for a default deny.
	Determining []Policy
	// Errors lists policies whose evaluation failed, sorted by policy ID.
	Errors []EvalError
	// PolicyVersion is the ID of the snapshot that made the decision.
	PolicyVersion string
	// Evaluated is how many policies the scope index handed to Cedar.
	Evaluated int
	// Guard, when not empty, says which live-state guard denied the request
	// before policies were consulted (for example "session-revoked"). Guards
	// cannot be overridden by policy.
	Guard string
	// RevokedAt is set when a revocation guard denied: a token issued after
	// this time would not be affected.
	RevokedAt time.Time
	// StateSeq is the live-state sequence the decision was made at.
	StateSeq uint64
}

// Reasons returns the IDs of the determining policies.
func (r Result) Reasons() []string {
	out := make([]string, len(r.Determining))
	for i, p := range r.Determining {
		out[i] = p.ID
	}
	return out
}

// Decide evaluates req against the snapshot's policies and entities. A nil
// snapshot denies.
func Decide(snap *policy.Snapshot, req Request) Result {
	if snap == nil {
		return Result{Errors: []EvalError{{Message: "no active policy set"}}}
	}
	// The overlay and the selection go to Cedar as interfaces; one
	// allocation holds both.
	st := &decideState{ov: overlay{top: req.Entities, base: snap.Entities}}
	var ents types.EntityGetter = snap.Entities
	if len(req.Entities) > 0 {
		ents = &st.ov
	}
	st.sel = snap.Index.Select(ents, req.Principal, req.Action, req.Resource)
	return evaluate(&st.sel, ents, req, snap.ID, st.sel.Len())
}

// decideState is what one Decide hands to Cedar by reference.
type decideState struct {
	ov  overlay
	sel policy.Selection
}

// DecideUnindexed is Decide without the scope index: every policy is handed
// to Cedar. It exists to prove the index changes nothing.
func DecideUnindexed(snap *policy.Snapshot, req Request) Result {
	if snap == nil {
		return Decide(snap, req)
	}
	var ents types.EntityGetter = snap.Entities
	if len(req.Entities) > 0 {
		ents = overlay{top: req.Entities, base: snap.Entities}
	}
	return evaluate(snap.Index, ents, req, snap.ID, snap.Index.Len())
}

// policyIter is what *policy.Index and policy.Selection offer evaluate.
type policyIter interface {
	All() iter.Seq2[cedar.PolicyID, *cedar.Policy]
	Annotations(cedar.PolicyID) map[string]string
}

func evaluate(ps policyIter, ents types.EntityGetter, req Request, version string, n int) Result {
	ctx := req.Context
	if ctx.Len() == 0 {
		ctx = types.Record{}
	}
	dec, diag := cedar.Authorize(ps, ents, cedar.Request{
		Principal: req.Principal,
		Action:    req.Action,
		Resource:  req.Resource,
		Context:   ctx,
	})
	res := Result{Allow: dec == cedar.Allow, PolicyVersion: version, Evaluated: n}
	if len(diag.Reasons) > 0 {
		res.Determining = make([]Policy, 0, len(diag.Reasons))
		effect := "permit"
		if !res.Allow {
			effect = "forbid"
		}
		for _, r := range diag.Reasons {
			res.Determining = append(res.Determining, Policy{
				ID:          string(r.PolicyID),
				Effect:      effect,
				Annotations: ps.Annotations(r.PolicyID),
			})
		}
		slices.SortFunc(res.Determining, func(a, b Policy) int { return strings.Compare(a.ID, b.ID) })
	}
	if len(diag.Errors) > 0 {
		res.Errors = make([]EvalError, len(diag.Errors))
		for i, e := range diag.Errors {
			res.Errors[i] = EvalError{PolicyID: string(e.PolicyID), Message: e.Message}
		}
		slices.SortFunc(res.Errors, func(a, b EvalError) int { return strings.Compare(a.PolicyID, b.PolicyID) })
		// Fail closed: Cedar skips a policy whose evaluation errors, so an
		// erroring forbid would let a permit through. Vigil denies instead.
		if res.Allow {
			res.Allow = false
			res.Determining = nil
		}
	}
	return res
}

// overlay serves request-scoped entities before the stored ones.
type overlay struct {
	top  types.EntityMap
	base types.EntityMap
}

func (o overlay) Get(uid types.EntityUID) (types.Entity, bool) {
	if e, ok := o.top[uid]; ok {
		return e, true
	}
	e, ok := o.base[uid]
	return e, ok
}
