package authzen

import (
	"errors"
	"maps"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
)

// entityArg is an AuthZEN subject or resource in Cedar terms.
type entityArg struct {
	ok  bool // given
	uid types.EntityUID
	// entity is the request-scoped entity (stored attributes overlaid with
	// properties) when the request carries properties; nil otherwise.
	entity *types.Entity
	props  types.RecordMap
}

// actionArg is an AuthZEN action in Cedar terms.
type actionArg struct {
	ok    bool // given
	uid   types.EntityUID
	props *types.Record // context.action, when properties were sent
}

// contextArg is the request context, converted once and shared by every
// item of a batch that does not bring its own.
type contextArg struct {
	m   types.RecordMap
	rec types.Record
}

// evalInput is one fully resolved access evaluation.
type evalInput struct {
	subject, resource entityArg
	action            actionArg
	context           *contextArg
	// ownAction and ownContext say whether the batch item (rather than
	// the defaults) gave the action and the context; errors about them
	// are located accordingly.
	ownAction, ownContext bool
}

// parseEntity maps {type, id, properties}. When idRequired is false (the
// searched-for entity of a search), id and properties are ignored.
func parseEntity(n *node, store types.EntityMap, idRequired bool) (entityArg, error) {
	if n.kind != kindObject {
		return entityArg{}, fieldErr("must be an object with \"type\" and \"id\", got %s", n.kind)
	}
	typ, err := entityType(n)
	if err != nil {
		return entityArg{}, err
	}
	if !idRequired {
		return entityArg{ok: true, uid: types.EntityUID{Type: typ}}, nil
	}
	id := n.get("id")
	switch {
	case id == nil:
		return entityArg{}, in(fieldErr("is required"), "id")
	case id.kind != kindString:
		return entityArg{}, in(fieldErr("must be a string, got %s", id.kind), "id")
	case id.s == "":
		return entityArg{}, in(fieldErr("must not be empty"), "id")
	}
	e := entityArg{ok: true, uid: types.NewEntityUID(typ, types.String(id.s))}
	if props := n.get("properties"); props != nil {
		m, err := recordOf(props)
		if err != nil {
			return entityArg{}, in(err, "properties")
		}
		ent := overlay(store, e.uid, m)
		e.entity, e.props = &ent, m
	}
	return e, nil
}

// overlay builds the request-scoped entity: the stored entity's attributes
// overlaid with props (props win per top-level key), its parents and tags
// kept. An entity that is not stored gets props as its only attributes.
func overlay(store types.EntityMap, uid types.EntityUID, props types.RecordMap) types.Entity {
	stored, ok := store[uid]
	if !ok {
		return types.Entity{UID: uid, Attributes: types.NewRecord(props)}
	}
	m := make(types.RecordMap, stored.Attributes.Len()+len(props))
	for k, v := range stored.Attributes.All() {
		m[k] = v
	}
	maps.Copy(m, props)
	return types.Entity{UID: uid, Parents: stored.Parents, Attributes: types.NewRecord(m), Tags: stored.Tags}
}

func parseAction(n *node, actionType types.EntityType) (actionArg, error) {
	if n.kind != kindObject {
		return actionArg{}, fieldErr("must be an object with \"name\", got %s", n.kind)
	}
	name := n.get("name")
	switch {
	case name == nil:
		return actionArg{}, in(fieldErr("is required"), "name")
	case name.kind != kindString:
		return actionArg{}, in(fieldErr("must be a string, got %s", name.kind), "name")
	case name.s == "":
		return actionArg{}, in(fieldErr("must not be empty"), "name")
	}
	a := actionArg{ok: true, uid: types.NewEntityUID(actionType, types.String(name.s))}
	if props := n.get("properties"); props != nil {
		m, err := recordOf(props)
		if err != nil {
			return actionArg{}, in(err, "properties")
		}
		r := types.NewRecord(m)
		a.props = &r
	}
	return a, nil
}

func parseContext(n *node) (*contextArg, error) {
	m, err := recordOf(n)
	if err != nil {
		return nil, err
	}
	return &contextArg{m: m, rec: types.NewRecord(m)}, nil
}

// parseEval resolves one evaluation: the members of item, falling back to
// the batch defaults (nil for a single evaluation). A member present in the
// item replaces the default as a whole. With partial set (the defaults of
// a batch) missing members are not an error. Error paths are relative to
// item.
func (h *Handler) parseEval(item *node, def *evalInput, store types.EntityMap, partial bool) (evalInput, error) {
	var in0 evalInput
	if def != nil {
		in0 = *def
		in0.ownAction, in0.ownContext = false, false
	}
	if item.kind != kindObject {
		return in0, fieldErr("must be an object, got %s", item.kind)
	}
	var err error
	if n := item.get("subject"); n != nil {
		if in0.subject, err = parseEntity(n, store, true); err != nil {
			return in0, in(err, "subject")
		}
	}
	if n := item.get("action"); n != nil {
		if in0.action, err = parseAction(n, h.actionType); err != nil {
			return in0, in(err, "action")
		}
		in0.ownAction = true
	}
	if n := item.get("resource"); n != nil {
		if in0.resource, err = parseEntity(n, store, true); err != nil {
			return in0, in(err, "resource")
		}
	}
	if n := item.get("context"); n != nil {
		if in0.context, err = parseContext(n); err != nil {
			return in0, in(err, "context")
		}
		in0.ownContext = true
	}
	if partial {
		return in0, nil
	}
	return in0, in0.complete(def != nil)
}

// complete checks that subject, action and resource are all known.
func (e *evalInput) complete(batch bool) error {
	for _, f := range [...]struct {
		name string
		ok   bool
	}{{"subject", e.subject.ok}, {"action", e.action.ok}, {"resource", e.resource.ok}} {
		if !f.ok {
			if batch {
				return in(fieldErr("is required: neither the item nor the request's defaults give a %s", f.name), f.name)
			}
			return in(fieldErr("is required"), f.name)
		}
	}
	return nil
}

// errActionClash is returned by request when action.properties and
// context.action are both given; clashError words it for the client.
var errActionClash = errors.New("action.properties and context.action are both given")

// clashError locates an action clash: in the batch item that brought the
// action or the context (item >= 0), or at the top level.
func clashError(e *evalInput, item int) error {
	const advice = "; Vigil passes action.properties to policies as context.action, so send only one of them"
	switch {
	case item >= 0 && e.ownAction:
		return in(at(in(in(fieldErr("conflicts with context.action"+advice), "properties"), "action"), item), "evaluations")
	case item >= 0 && e.ownContext:
		return in(at(in(in(fieldErr("conflicts with the default action's properties"+advice), "action"), "context"), item), "evaluations")
	}
	return in(in(fieldErr("conflicts with context.action"+advice), "properties"), "action")
}

// request assembles the Cedar request for a resolved evaluation.
func (e *evalInput) request() (decision.Request, error) {
	req := decision.Request{
		Principal: e.subject.uid,
		Action:    e.action.uid,
		Resource:  e.resource.uid,
		Identity:  &decision.Identity{Subject: string(e.subject.uid.ID)},
		// Live state (session assurance, device compliance, risk) is merged
		// into the context by the engine, over what the caller sent.
		MergeLiveContext: true,
	}
	var ctx types.RecordMap
	if e.context != nil {
		ctx = e.context.m
		req.Context = e.context.rec
		identityFromContext(req.Identity, ctx)
	}
	if e.action.props != nil {
		if _, clash := ctx["action"]; clash {
			return req, errActionClash
		}
		m := make(types.RecordMap, len(ctx)+1)
		maps.Copy(m, ctx)
		m["action"] = *e.action.props
		req.Context = types.NewRecord(m)
	}
	s, r := e.subject.entity, e.resource.entity
	switch {
	case s == nil && r == nil:
	case s != nil && r != nil && s.UID == r.UID:
		// The same entity named twice: both property sets apply, the
		// resource's last.
		merged := overlay(types.EntityMap{s.UID: *s}, s.UID, e.resource.props)
		req.Entities = types.EntityMap{s.UID: merged}
	default:
		req.Entities = make(types.EntityMap, 2)
		if s != nil {
			req.Entities[s.UID] = *s
		}
		if r != nil {
			req.Entities[r.UID] = *r
		}
	}
	return req, nil
}

// identityFromContext lets a PEP tell live state which token the subject
// presented, through context.token {iss, iat, sid, jti, email, client_id}
// and context.device.id: revocations then apply to tokens issued before
// them only (without iat a revoked subject is denied: its token cannot
// prove it is newer), and session, token and device signals match.
func identityFromContext(id *decision.Identity, ctx types.RecordMap) {
	str := func(r types.RecordMap, k string) string {
		if v, ok := r[types.String(k)].(types.String); ok {
			return string(v)
		}
		return ""
	}
	if tok, ok := ctx["token"].(types.Record); ok {
		t := tok.Map()
		id.Issuer = str(t, "iss")
		id.SessionID = str(t, "sid")
		id.TokenID = str(t, "jti")
		id.Email = str(t, "email")
		id.ClientID = str(t, "client_id")
		if iat, ok := t["iat"].(types.Long); ok && iat > 0 {
			id.IssuedAt = time.Unix(int64(iat), 0)
		}
	}
	if dev, ok := ctx["device"].(types.Record); ok {
		id.DeviceID = str(dev.Map(), "id")
	}
}
