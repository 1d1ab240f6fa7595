package gateway

import (
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/route"
)

// AnonymousPrincipal is the principal of requests without a token on
// anonymous routes. Policies must permit it explicitly, e.g.
// permit(principal == Anonymous::"anonymous", action == Action::"GET /healthz", resource);
var AnonymousPrincipal = types.NewEntityUID("Anonymous", "anonymous")

// Neutral signal values, used until live state says otherwise.
const (
	NeutralRiskLevel = "LOW"
)

// Signals are the mutable facts about a caller that go into
// context.session, context.device and context.risk. The gateway fills them
// with neutral values (see docs/gateway-request.md); Options.Enrich replaces them from
// live state.
type Signals struct {
	Session SessionSignals
	Device  DeviceSignals
	Risk    RiskSignals
}

// SessionSignals become context.session.
type SessionSignals struct {
	// ID is the session id (token "sid").
	ID string
	// Assurance is the session's authentication assurance; neutral value:
	// the token's acr.
	Assurance string
	// AssuranceNamespace qualifies Assurance (e.g. "RFC8176", "NIST-AAL");
	// "" when unknown.
	AssuranceNamespace string
	// AssuranceTime is when the assurance level was last reported.
	AssuranceTime time.Time
}

// DeviceSignals become context.device.
type DeviceSignals struct {
	// ID is the device id from the trusted device header ("" when none).
	ID string
	// Compliant and Managed are false until live state reports otherwise.
	Compliant bool
	Managed   bool
	// ComplianceTime is when compliance was last reported.
	ComplianceTime time.Time
}

// RiskSignals become context.risk.
type RiskSignals struct {
	Score   int64
	Level   string
	Reasons []string
	// Time is when the risk was last assessed.
	Time time.Time
}

// EnrichFunc adds live-state facts to a request before it is decided. It
// runs for every decision, including re-evaluations of long-lived requests,
// with the View the decision is made with. req has Principal, Action,
// Resource, Entities and Identity set (Identity is nil for anonymous
// requests); Context is built from sig after Enrich returns. It must not
// block: it runs on the request path. req.Entities is shared with other
// requests of the same token: replace it (as engine.OverrideClaims does),
// never modify it in place.
type EnrichFunc func(v engine.View, req *decision.Request, sig *Signals)

// call is what the gateway established about one request before deciding:
// everything needed to build (and later rebuild) the decision request.
type call struct {
	id       string
	method   string
	path     string // raw path as received, without query
	host     string
	scheme   string
	ip       netip.Addr
	deviceID string
	geo      Geo
	token    *identity.Token // nil: anonymous
	match    route.Match
}

// Bounds on the conversion of token claims into Cedar attributes.
const (
	maxClaimDepth  = engine.MaxClaimDepth
	maxClaimValues = engine.MaxClaimValues
)

// buildRequest builds the decision request for c at time now, against the
// entities of view v. facts may be nil (no caching).
func buildRequest(v engine.View, c *call, now time.Time, enrich EnrichFunc, facts *factCache) decision.Request {
	// Enrich gets pointers to the request and the signals, so they live on
	// the heap; one allocation holds them and the identity.
	st := &building{
		req: decision.Request{Action: c.match.Action, Resource: c.match.Resource},
		sig: Signals{
			Device: DeviceSignals{ID: c.deviceID},
			Risk:   RiskSignals{Level: NeutralRiskLevel},
		},
	}
	req, sig := &st.req, &st.sig
	var tf *tokenFacts
	if t := c.token; t != nil {
		tf = facts.get(t)
		req.Principal = tf.uid
		req.Entities = tf.entities(v)
		st.id = tf.identity
		st.id.DeviceID = c.deviceID
		req.Identity = &st.id
		sig.Session = tf.sessionSig
	} else {
		req.Principal = AnonymousPrincipal
	}
	if enrich != nil {
		enrich(v, req, sig)
	}
	req.Context = buildContext(c, tf, sig, now, facts)
	return *req
}

// building is the state of one buildRequest.
type building struct {
	req decision.Request
	sig Signals
	id  decision.Identity
}

func principalUID(t *identity.Token) types.EntityUID {
	typ := t.PrincipalType
	if typ == "" {
		typ = identity.DefaultPrincipalType
	}
	return types.NewEntityUID(types.EntityType(typ), types.String(t.Subject))
}

// tokenFacts are the Cedar forms of a verified token's immutable facts:
// computed once per token and reused for every request that carries it.
// Everything in it is read-only once built; the memos hold values that are
// pure functions of their keys (a policy snapshot, signal values), so they
// cannot make a decision stale.
type tokenFacts struct {
	tok        *identity.Token
	uid        types.EntityUID
	attrs      types.Record // claims
	parents    []types.EntityUID
	roles      types.EntityUIDSet
	record     types.Value    // context.token (a Record)
	sessionSig SessionSignals // the neutral session signals of the token
	session    types.Value    // context.session from sessionSig (a Record)
	// identity is the request's decision.Identity without the device id.
	identity decision.Identity
	// bare is the request entities when no policy snapshot stores an
	// entity with the principal's UID: the principal from the token alone.
	bare types.EntityMap
	// bySnap is the request entities for the last snapshot a request was
	// decided with (see entities).
	bySnap atomic.Pointer[snapEntities]
	// Records for signals that differ from the neutral ones, for the last
	// values seen: live state and the device header rarely change between
	// two requests of one token.
	sessions recordMemo[SessionSignals]
	devices  recordMemo[DeviceSignals]
	geos     recordMemo[Geo]
	// params is context.request.params of routes with one parameter.
	params recordMemo[param]
}

// param is one path parameter.
type param struct{ name, value string }

func newTokenFacts(t *identity.Token) *tokenFacts {
	tf := &tokenFacts{tok: t, uid: principalUID(t)}
	budget := maxClaimValues
	attrs := make(types.RecordMap, len(t.Claims))
	for k, raw := range t.Claims {
		if val, ok := engine.ClaimValue(raw, 0, &budget); ok {
			attrs[types.String(k)] = val
		}
	}
	tf.attrs = types.NewRecord(attrs)
	roleType := t.RoleType
	if roleType == "" {
		roleType = identity.DefaultRoleType
	}
	tf.parents = make([]types.EntityUID, len(t.Roles))
	for i, r := range t.Roles {
		tf.parents[i] = types.NewEntityUID(types.EntityType(roleType), types.String(r))
	}
	tf.roles = types.NewEntityUIDSet(tf.parents...)
	tf.record = types.Value(types.NewRecord(types.RecordMap{
		"iss":       types.String(t.Issuer),
		"sub":       types.String(t.Subject),
		"iat":       unixSeconds(t.IssuedAt),
		"exp":       unixSeconds(t.Expiry),
		"scopes":    stringSet(t.Scopes),
		"acr":       types.String(t.ACR),
		"amr":       stringSet(t.AMR),
		"sid":       types.String(t.SessionID),
		"client_id": types.String(t.ClientID),
		"jti":       types.String(t.JTI),
		"xms_cc":    stringSet(clientCapabilities(t)),
	}))
	tf.sessionSig = SessionSignals{ID: t.SessionID, Assurance: t.ACR}
	tf.session = types.Value(sessionRecord(tf.sessionSig))
	tf.identity = decision.Identity{
		Issuer:    t.Issuer,
		Subject:   t.Subject,
		Email:     claimString(t.Claims, "email"),
		SessionID: t.SessionID,
		TokenID:   t.JTI,
		ClientID:  t.ClientID,
		IssuedAt:  t.IssuedAt,
	}
	tf.bare = types.EntityMap{tf.uid: tf.principal(engine.View{})}
	return tf
}

// snapEntities are the request entities of one token for one policy
// snapshot. The snapshot is held weakly so that a token seen once does not
// keep a replaced policy set in memory.
type snapEntities struct {
	snap     weak.Pointer[policy.Snapshot]
	entities types.EntityMap
}

// entities returns the request-scoped entities of a request with this
// token decided against view v: the principal (see principal). Snapshots
// are immutable, so the map is built once per token and snapshot and then
// shared by every request: callers must not modify it.
func (tf *tokenFacts) entities(v engine.View) types.EntityMap {
	snap := v.Policies
	if snap == nil {
		return tf.bare
	}
	if se := tf.bySnap.Load(); se != nil && se.snap.Value() == snap {
		return se.entities
	}
	ents := tf.bare
	if _, stored := snap.Entities[tf.uid]; stored {
		ents = types.EntityMap{tf.uid: tf.principal(v)}
	}
	tf.bySnap.Store(&snapEntities{snap: weak.Make(snap), entities: ents})
	return ents
}

// principal returns the request-scoped principal entity: the token's
// claims as attributes and its roles as parents, laid over the entity with
// the same UID in the view's entity store, if any (claims win over stored
// attributes; stored parents are kept).
func (tf *tokenFacts) principal(v engine.View) types.Entity {
	var stored types.Entity
	var hasStored bool
	if v.Policies != nil {
		stored, hasStored = v.Policies.Entities[tf.uid]
	}
	if !hasStored {
		return types.Entity{UID: tf.uid, Parents: tf.roles, Attributes: tf.attrs}
	}
	attrs := make(types.RecordMap, tf.attrs.Len()+stored.Attributes.Len())
	for k, val := range stored.Attributes.All() {
		attrs[k] = val
	}
	for k, val := range tf.attrs.All() {
		attrs[k] = val
	}
	parents := make([]types.EntityUID, 0, len(tf.parents)+stored.Parents.Len())
	for p := range stored.Parents.All() {
		parents = append(parents, p)
	}
	parents = append(parents, tf.parents...)
	return types.Entity{
		UID:        tf.uid,
		Parents:    types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(attrs),
		Tags:       stored.Tags,
	}
}

// recordMemo remembers the record built for the last key it was asked
// about. The record is a pure function of the key, so a hit returns exactly
// what building it again would. Safe for concurrent use; concurrent misses
// each build and the last one stays. Records are kept as Values: converting
// a Record to the interface allocates.
type recordMemo[K comparable] struct {
	last atomic.Pointer[memoEntry[K]]
}

type memoEntry[K comparable] struct {
	key K
	rec types.Value
}

func (m *recordMemo[K]) get(key K, build func(K) types.Record) types.Value {
	if e := m.last.Load(); e != nil && e.key == key {
		return e.rec
	}
	rec := types.Value(build(key))
	m.last.Store(&memoEntry[K]{key: key, rec: rec})
	return rec
}

// factCache keeps tokenFacts per verified token. The verifier hands out
// one shared *identity.Token per cached token, so the pointer is the key.
// Only immutable facts of the token are cached; nothing that can change
// (entities, live state, policies) is, so the cache cannot make a decision
// stale. A nil cache computes every time.
type factCache struct {
	mu  sync.RWMutex
	m   map[*identity.Token]*tokenFacts
	max int
	// scratch holds *scratchMaps for buildContext.
	scratch sync.Pool
}

// scratchMaps are the maps buildContext fills to build context.request and
// the context. NewRecord copies the map it is given, so they can be
// refilled for the next request.
type scratchMaps struct{ request, context types.RecordMap }

// maps returns cleared scratch maps; release hands them back.
func (c *factCache) maps() *scratchMaps {
	if c != nil {
		if s, ok := c.scratch.Get().(*scratchMaps); ok {
			return s
		}
	}
	return &scratchMaps{request: make(types.RecordMap, 8), context: make(types.RecordMap, 6)}
}

func (c *factCache) release(s *scratchMaps) {
	if c != nil {
		clear(s.request) // holds no request's values while pooled
		clear(s.context)
		c.scratch.Put(s)
	}
}

func newFactCache(max int) *factCache {
	return &factCache{m: make(map[*identity.Token]*tokenFacts), max: max}
}

func (c *factCache) get(t *identity.Token) *tokenFacts {
	if c == nil {
		return newTokenFacts(t)
	}
	c.mu.RLock()
	tf := c.m[t]
	c.mu.RUnlock()
	if tf != nil {
		return tf
	}
	tf = newTokenFacts(t)
	c.mu.Lock()
	if len(c.m) >= c.max {
		// Dropping everything is crude but bounded and cheap; the working
		// set refills within a few requests.
		clear(c.m)
	}
	c.m[t] = tf
	c.mu.Unlock()
	return tf
}

func claimString(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

func stringSet(ss []string) types.Set {
	vals := make([]types.Value, len(ss))
	for i, s := range ss {
		vals[i] = types.String(s)
	}
	return types.NewSet(vals...)
}

func unixSeconds(t time.Time) types.Long {
	if t.IsZero() {
		return 0
	}
	return types.Long(t.Unix())
}

// ipValue converts an address to a Cedar ipaddr; the unspecified address
// stands in for an unknown one so that the attribute always has one type.
func ipValue(a netip.Addr) types.IPAddr {
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	a = a.Unmap().WithZone("")
	return types.IPAddr(netip.PrefixFrom(a, a.BitLen()))
}

// Records for neutral or absent values, shared by all requests (as Values:
// converting a Record to the interface allocates).
var (
	anonymousToken types.Value = types.NewRecord(types.RecordMap{
		"iss": types.String(""), "sub": types.String(""), "iat": types.Long(0), "exp": types.Long(0),
		"scopes": types.NewSet(), "acr": types.String(""), "amr": types.NewSet(),
		"sid": types.String(""), "client_id": types.String(""), "jti": types.String(""),
		"xms_cc": types.NewSet(),
	})
	neutralSession types.Value = sessionRecord(SessionSignals{})
	neutralDevice  types.Value = deviceRecord(DeviceSignals{})
	neutralRisk    types.Value = riskRecord(RiskSignals{Level: NeutralRiskLevel})
	unknownGeo     types.Value = geoRecord(Geo{})
	noParams       types.Value = types.NewRecord(types.RecordMap{})
)

func sessionRecord(s SessionSignals) types.Record {
	return types.NewRecord(types.RecordMap{
		"id":                  types.String(s.ID),
		"assurance":           types.String(s.Assurance),
		"assurance_namespace": types.String(s.AssuranceNamespace),
		"assurance_time":      unixSeconds(s.AssuranceTime),
	})
}

func deviceRecord(d DeviceSignals) types.Record {
	return types.NewRecord(types.RecordMap{
		"id":              types.String(d.ID),
		"compliant":       types.Boolean(d.Compliant),
		"managed":         types.Boolean(d.Managed),
		"compliance_time": unixSeconds(d.ComplianceTime),
	})
}

func riskRecord(r RiskSignals) types.Record {
	return types.NewRecord(types.RecordMap{
		"score":   types.Long(r.Score),
		"level":   types.String(r.Level),
		"reasons": stringSet(r.Reasons),
		"time":    unixSeconds(r.Time),
	})
}

func paramRecord(p param) types.Record {
	return types.NewRecord(types.RecordMap{types.String(p.name): types.String(p.value)})
}

func geoRecord(g Geo) types.Record {
	return types.NewRecord(types.RecordMap{
		"country": types.String(g.Country),
		"city":    types.String(g.City),
	})
}

// buildContext builds the Cedar context documented in docs/gateway-request.md. Every
// record and attribute is always present, with neutral values when
// unknown, so that policies never fail on a missing attribute. tf is nil
// for anonymous requests.
//
// Only context.request and the context itself are built for every
// request (cedar-go's NewRecord sorts, hashes and copies, so each costs);
// the other records are shared: neutral ones by all requests, the token's
// by all requests with that token, and the signal and path-parameter
// records of the last values seen by the requests of one token. facts (may
// be nil) lends the maps the two records are built from.
func buildContext(c *call, tf *tokenFacts, sig *Signals, now time.Time, facts *factCache) types.Record {
	tok, session := anonymousToken, neutralSession
	device, geo := neutralDevice, unknownGeo
	if tf != nil {
		tok, session = tf.record, tf.session
		if sig.Session != tf.sessionSig {
			session = tf.sessions.get(sig.Session, sessionRecord)
		}
		if sig.Device != (DeviceSignals{}) {
			device = tf.devices.get(sig.Device, deviceRecord)
		}
		if c.geo != (Geo{}) {
			geo = tf.geos.get(c.geo, geoRecord)
		}
	} else {
		if sig.Session != (SessionSignals{}) {
			session = types.Value(sessionRecord(sig.Session))
		}
		if sig.Device != (DeviceSignals{}) {
			device = types.Value(deviceRecord(sig.Device))
		}
		if c.geo != (Geo{}) {
			geo = types.Value(geoRecord(c.geo))
		}
	}
	risk := neutralRisk
	if sig.Risk.Score != 0 || sig.Risk.Level != NeutralRiskLevel || len(sig.Risk.Reasons) > 0 || !sig.Risk.Time.IsZero() {
		risk = types.Value(riskRecord(sig.Risk))
	}
	params := noParams
	switch n := len(c.match.Params); {
	case n == 1 && tf != nil:
		for k, v := range c.match.Params {
			params = tf.params.get(param{name: k, value: v}, paramRecord)
		}
	case n > 0:
		m := make(types.RecordMap, n)
		for k, v := range c.match.Params {
			m[types.String(k)] = types.String(v)
		}
		params = types.Value(types.NewRecord(m))
	}
	sm := facts.maps()
	defer facts.release(sm)
	r := sm.request
	r["method"] = methodValue(c.method)
	r["path"] = types.String(c.path)
	r["host"] = types.String(c.host)
	r["scheme"] = schemeValue(c.scheme)
	r["ip"] = ipValue(c.ip)
	r["time"] = types.NewDatetime(now)
	r["unix"] = types.Long(now.Unix())
	r["params"] = params
	ctx := sm.context
	ctx["request"] = types.NewRecord(r)
	ctx["token"] = tok
	ctx["session"] = session
	ctx["device"] = device
	ctx["geo"] = geo
	ctx["risk"] = risk
	return types.NewRecord(ctx)
}

// methodValue and schemeValue return the Cedar string of a request method
// or scheme; the common ones are converted once, not per request.
func methodValue(m string) types.Value {
	switch m {
	case http.MethodGet:
		return types.String(http.MethodGet)
	case http.MethodHead:
		return types.String(http.MethodHead)
	case http.MethodPost:
		return types.String(http.MethodPost)
	case http.MethodPut:
		return types.String(http.MethodPut)
	case http.MethodPatch:
		return types.String(http.MethodPatch)
	case http.MethodDelete:
		return types.String(http.MethodDelete)
	case http.MethodOptions:
		return types.String(http.MethodOptions)
	}
	return types.String(m)
}

func schemeValue(s string) types.Value {
	switch s {
	case "http":
		return types.String("http")
	case "https":
		return types.String("https")
	}
	return types.String(s)
}

// clientCapabilities returns the token's "xms_cc" claim (a string or an
// array of strings): the client capabilities, "cp1" for CAE.
func clientCapabilities(t *identity.Token) []string {
	switch v := t.Claims["xms_cc"].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
