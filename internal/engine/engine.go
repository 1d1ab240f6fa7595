// Package engine joins the pieces every enforcement surface needs to make a
// decision: the active policy snapshot and the live-state snapshot. A View
// pins one consistent pair; all decisions of one HTTP request (an AuthZEN
// batch, a search) use one View so they never mix versions.
//
// Deciding with a View applies, in order: the live-state guards (a purged
// or disabled account, a token issued before a revocation), which no policy
// can override; then, for surfaces that ask for it, the live facts merged
// into the Cedar context (context.session, context.device, context.risk);
// then the Cedar policies.
package engine

import (
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/state"
)

// StateSource provides the current live-state snapshot.
type StateSource interface {
	Current() *state.Snapshot
}

var _ StateSource = (*state.Store)(nil)

// Engine hands out Views over the current policies and live state.
type Engine struct {
	Policies *policy.Store
	// State is optional: without it no guard runs and contexts get no
	// live facts.
	State StateSource
	// Freshness is optional: with it, every View carries the policy
	// sequence and whether the replica is stale (see internal/replica).
	Freshness Freshness
}

// New returns an Engine over a policy store and an optional state source.
func New(policies *policy.Store, st StateSource) *Engine {
	return &Engine{Policies: policies, State: st}
}

// View is a consistent, immutable pair of snapshots.
type View struct {
	Policies *policy.Snapshot
	// State is nil when live state is not configured.
	State *state.Snapshot
	// PolicySeq is the policy activation sequence the view reflects at
	// least (0 without replication).
	PolicySeq uint64
	// Stale, when not nil, says why this replica cannot prove that the view
	// is fresh enough to decide with (it wraps ErrStale). Enforcement
	// surfaces fail closed with 503 instead of deciding.
	Stale error
}

// View pins the current snapshots.
func (e *Engine) View() View {
	var v View
	if e.Freshness != nil {
		// The sequence is read before the snapshot, which is swapped in
		// before the sequence advances: the view is at least that fresh.
		v.PolicySeq = e.Freshness.PolicySeq()
		v.Stale = e.Freshness.Stale()
	}
	v.Policies = e.Policies.Current()
	if e.State != nil {
		v.State = e.State.Current()
	}
	return v
}

// Ready reports whether a policy set is active.
func (v View) Ready() bool { return v.Policies != nil }

// StateSeq is the live-state sequence of the view (0 without state).
func (v View) StateSeq() uint64 {
	if v.State == nil {
		return 0
	}
	return v.State.Seq()
}

// Facts returns the live facts that apply to an identity.
func (v View) Facts(id *decision.Identity) state.Facts {
	if v.State == nil || id == nil {
		return state.Facts{Seq: v.StateSeq()}
	}
	return v.State.Facts(QueryOf(id))
}

// QueryOf maps a decision identity onto a live-state query.
func QueryOf(id *decision.Identity) state.Query {
	return state.Query{
		Issuer:    id.Issuer,
		Subject:   id.Subject,
		Email:     id.Email,
		SessionID: id.SessionID,
		TokenID:   id.TokenID,
		DeviceID:  id.DeviceID,
		ClientID:  id.ClientID,
		IssuedAt:  id.IssuedAt,
	}
}

// Decide decides req against the view. It is safe for concurrent use.
func (v View) Decide(req decision.Request) decision.Result {
	seq := v.StateSeq()
	if v.State != nil && req.Identity != nil {
		f := v.State.Facts(QueryOf(req.Identity))
		if deny, reason, at := f.Guard(req.Identity.IssuedAt); deny {
			res := decision.Result{Guard: reason, RevokedAt: at, StateSeq: seq}
			if v.Policies != nil {
				res.PolicyVersion = v.Policies.ID
			}
			return res
		}
		if req.MergeLiveContext {
			req.Context = MergeFacts(req.Context, f)
			if len(f.ClaimOverrides) > 0 {
				req.Entities = OverrideClaims(req.Entities, req.Principal, f.ClaimOverrides)
			}
		}
	} else if req.MergeLiveContext {
		req.Context = MergeFacts(req.Context, state.Facts{})
	}
	res := decision.Decide(v.Policies, req)
	res.StateSeq = seq
	return res
}

// MergeFacts returns ctx with live facts set in context.session,
// context.device and context.risk. Live state wins over values the caller
// supplied for the same attributes; attributes live state knows nothing
// about are left as the caller gave them, and neutral values are filled in
// where neither says anything (risk level "LOW", score 0, no reasons).
func MergeFacts(ctx types.Record, f state.Facts) types.Record {
	top := ctx.Map()
	if top == nil {
		top = types.RecordMap{}
	}
	sub := func(key string) types.RecordMap {
		if r, ok := top[types.String(key)].(types.Record); ok {
			return r.Map()
		}
		return types.RecordMap{}
	}
	session := sub("session")
	if f.Assurance != nil {
		session["assurance"] = types.String(f.Assurance.Level)
		session["assurance_namespace"] = types.String(f.Assurance.Namespace)
		session["assurance_time"] = unix(f.Assurance.Time)
	}
	if len(session) > 0 {
		top["session"] = types.NewRecord(session)
	}
	device := sub("device")
	if f.DeviceCompliant != nil {
		device["compliant"] = types.Boolean(*f.DeviceCompliant)
		device["compliance_time"] = unix(f.DeviceTime)
	}
	if len(device) > 0 {
		top["device"] = types.NewRecord(device)
	}
	risk := sub("risk")
	if f.Risk.Level != "" {
		reasons := make([]types.Value, len(f.Risk.Reasons))
		for i, r := range f.Risk.Reasons {
			reasons[i] = types.String(r)
		}
		risk["score"] = types.Long(f.Risk.Score)
		risk["level"] = types.String(f.Risk.Level)
		risk["reasons"] = types.NewSet(reasons...)
		risk["time"] = unix(f.Risk.Time)
	} else {
		if _, ok := risk["level"]; !ok {
			risk["level"] = types.String(state.RiskLow)
		}
		if _, ok := risk["score"]; !ok {
			risk["score"] = types.Long(0)
		}
		if _, ok := risk["reasons"]; !ok {
			risk["reasons"] = types.NewSet()
		}
	}
	top["risk"] = types.NewRecord(risk)
	return types.NewRecord(top)
}

// OverrideClaims returns entities where the principal's attributes are
// overlaid with claims changed after its token was issued
// (token-claims-change). The principal must already be in entities (as a
// request-scoped entity); otherwise entities is returned unchanged.
func OverrideClaims(entities types.EntityMap, principal types.EntityUID, claims map[string]any) types.EntityMap {
	e, ok := entities[principal]
	if !ok {
		return entities
	}
	attrs := e.Attributes.Map()
	if attrs == nil {
		attrs = types.RecordMap{}
	}
	budget := MaxClaimValues
	for k, v := range claims {
		if cv, ok := ClaimValue(v, 0, &budget); ok {
			attrs[types.String(k)] = cv
		} else {
			delete(attrs, types.String(k))
		}
	}
	out := make(types.EntityMap, len(entities))
	for k, v := range entities {
		out[k] = v
	}
	e.Attributes = types.NewRecord(attrs)
	out[principal] = e
	return out
}

func unix(t time.Time) types.Long {
	if t.IsZero() {
		return 0
	}
	return types.Long(t.Unix())
}
