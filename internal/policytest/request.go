package policytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/policy"
)

// Request is a request as a test case or `vigil eval` states it: the
// Cedar request plus entities that stand in for stored ones. It does not
// depend on a policy snapshot; Decision resolves it against one.
type Request struct {
	Principal types.EntityUID
	Action    types.EntityUID
	Resource  types.EntityUID
	Context   types.Record
	// Entities take the place of stored entities with the same UID.
	Entities types.EntityMap
	// PrincipalOverlay and ResourceOverlay, when set, change the principal
	// or resource entity (stored, or from Entities) for this request.
	PrincipalOverlay *Overlay
	ResourceOverlay  *Overlay
}

// Overlay changes one entity for one request.
type Overlay struct {
	// Attrs are laid over the entity's attributes; a key given here wins.
	Attrs types.Record
	// Parents replace the entity's parents when ReplaceParents is set (an
	// empty list removes them all).
	Parents        []types.EntityUID
	ReplaceParents bool
}

// Decision resolves the request against a snapshot's stored entities into
// the request the decision core takes.
func (r Request) Decision(snap *policy.Snapshot) decision.Request {
	out := decision.Request{
		Principal: r.Principal,
		Action:    r.Action,
		Resource:  r.Resource,
		Context:   r.Context,
	}
	if len(r.Entities) == 0 && r.PrincipalOverlay == nil && r.ResourceOverlay == nil {
		return out
	}
	ents := make(types.EntityMap, len(r.Entities)+2)
	for k, v := range r.Entities {
		ents[k] = v
	}
	var stored types.EntityMap
	if snap != nil {
		stored = snap.Entities
	}
	apply := func(uid types.EntityUID, ov *Overlay) {
		if ov == nil {
			return
		}
		base, ok := ents[uid]
		if !ok {
			base, ok = stored[uid]
		}
		if !ok {
			base = types.Entity{UID: uid}
		}
		e := types.Entity{UID: uid, Parents: base.Parents, Attributes: base.Attributes, Tags: base.Tags}
		if ov.Attrs.Len() > 0 {
			m := make(types.RecordMap, base.Attributes.Len()+ov.Attrs.Len())
			for k, v := range base.Attributes.All() {
				m[k] = v
			}
			for k, v := range ov.Attrs.All() {
				m[k] = v
			}
			e.Attributes = types.NewRecord(m)
		}
		if ov.ReplaceParents {
			e.Parents = types.NewEntityUIDSet(ov.Parents...)
		}
		ents[uid] = e
	}
	apply(r.Principal, r.PrincipalOverlay)
	apply(r.Resource, r.ResourceOverlay)
	out.Entities = ents
	return out
}

// RequestFlags are the request parts of `vigil eval` as given on the
// command line: UIDs in Cedar syntax (the action may be a bare name,
// meaning Action::"name"), the context as a JSON object and extra entities
// as a JSON array in Cedar's entities format. Empty Context and Entities
// mean none.
type RequestFlags struct {
	Principal string
	Action    string
	Resource  string
	Context   string
	Entities  string
}

// MaxRequestBytes bounds a request document or flag value.
const MaxRequestBytes = 1 << 20

// ParseRequest builds a request from command-line flags.
func ParseRequest(f RequestFlags) (Request, error) {
	var r Request
	var errs []error
	var err error
	if r.Principal, err = uid("principal", nonEmpty(f.Principal)); err != nil {
		errs = append(errs, flagErr("principal", err))
	}
	if r.Action, err = actionUID("action", nonEmpty(f.Action)); err != nil {
		errs = append(errs, flagErr("action", err))
	}
	if r.Resource, err = uid("resource", nonEmpty(f.Resource)); err != nil {
		errs = append(errs, flagErr("resource", err))
	}
	if f.Context != "" {
		v, err := decodeJSON(f.Context)
		if err == nil {
			r.Context, err = newConverter().record("", v)
		}
		if err != nil {
			errs = append(errs, flagErr("context", err))
		}
	}
	if f.Entities != "" {
		if len(f.Entities) > MaxRequestBytes {
			errs = append(errs, fmt.Errorf("--entities: longer than %d bytes", MaxRequestBytes))
		} else if err := json.Unmarshal([]byte(f.Entities), &r.Entities); err != nil {
			errs = append(errs, fmt.Errorf("--entities: want a JSON array in Cedar's entities format: %w", err))
		}
	}
	if len(errs) > 0 {
		return Request{}, errors.Join(errs...)
	}
	return r, nil
}

func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func flagErr(name string, err error) error {
	return fmt.Errorf("--%s: %s", name, msgOf(err))
}

// decodeJSON decodes one JSON value, keeping numbers exact.
func decodeJSON(s string) (any, error) {
	if len(s) > MaxRequestBytes {
		return nil, fmt.Errorf("longer than %d bytes", MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: unexpected data after the value")
	}
	return v, nil
}

// ParseRequestJSON builds a request from a JSON document (YAML is accepted
// too) with the request keys of a test case: principal, action, resource,
// context, entities, principal_attrs, principal_parents, resource_attrs,
// resource_parents. For example:
//
//	{"principal": "User::\"alice\"", "action": "GET /documents/{id}",
//	 "resource": {"type": "Document", "id": "d1"},
//	 "context": {"device": {"id": "laptop-7", "compliant": true}}}
//
// Unknown keys are errors. name labels problems (for example the file the
// document came from).
func ParseRequestJSON(name string, data []byte) (Request, error) {
	var doc requestDoc
	body, err := decodeYAML(name, data, MaxRequestBytes, "empty; want one JSON object with principal, action, resource and context", &doc)
	if err != nil {
		return Request{}, err
	}
	src := &source{file: name, root: body, conv: newConverter()}
	r, ok := src.request(nil, "", doc)
	if !ok {
		return Request{}, &LoadError{Problems: src.errs}
	}
	return r, nil
}
