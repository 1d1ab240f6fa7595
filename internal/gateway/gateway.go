package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/vigil-authz/vigil/internal/decision"
	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/route"
)

// Authenticator verifies bearer tokens. *identity.Verifier implements it.
// Errors of type *identity.Error carry a client-safe description and may be
// Temporary (issuer unreachable); any error denies the request.
type Authenticator interface {
	Verify(ctx context.Context, raw string) (*identity.Token, error)
}

// Router maps a request method and raw path to a route. *route.Table
// implements it. Errors matching route.ErrBadRequest answer 400, errors
// matching route.ErrNoRoute are denied (403).
type Router interface {
	Match(method, rawPath string) (route.Match, error)
}

// Recorder receives one observation per decision. *metrics.Metrics
// implements it. It runs on the request path and must not block.
type Recorder interface {
	Decision(surface string, allow bool, d time.Duration)
}

// factCacheSize bounds the per-token facts kept between requests.
const factCacheSize = 16384

// Decision surfaces reported to the Recorder.
const (
	SurfaceGateway     = "gateway"
	SurfaceForwardAuth = "forward_auth"
	SurfaceStream      = "gateway_stream"
)

// Options are the dependencies of a Gateway.
type Options struct {
	// Config is the gateway configuration; New applies SetDefaults and
	// Validate to a copy.
	Config Config
	// Views returns the current engine view (policies and live state). It
	// is called once per decision.
	Views func() engine.View
	// Await, when set, waits until a view would reflect the minimum
	// sequences a request asks for with X-Vigil-Min-Seq and
	// X-Vigil-Min-Policy-Seq (engine.Engine.Await). Without it such
	// requests are answered only when the current view already does.
	Await func(ctx context.Context, c engine.Consistency) error
	// Auth verifies bearer tokens.
	Auth Authenticator
	// Router matches requests to routes.
	Router Router
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Recorder, when set, observes every decision.
	Recorder Recorder
	// Enrich, when set, adds live-state signals to every decision request.
	Enrich EnrichFunc
	// Observe, when set, receives an Event for every decided request and
	// every refused bearer token (behaviour analysis, e.g. the risk
	// engine). Re-decisions of long-lived requests are not reported.
	Observe ObserveFunc
}

// Gateway is the enforcement point: an http.Handler that decides and
// forwards every request, answers forward-auth requests on the configured
// path, and keeps long-lived requests under continuous evaluation.
type Gateway struct {
	cfg     Config
	views   func() engine.View
	await   func(ctx context.Context, c engine.Consistency) error
	auth    Authenticator
	router  Router
	log     *slog.Logger
	now     func() time.Time
	rec     Recorder
	enrich  EnrichFunc
	obs     ObserveFunc // Options.Observe; nil when unset
	proxies proxySet
	geo     *geoDB
	buffers *bufferPool
	facts   *factCache

	upstreams map[string]*upstream
	fallback  *upstream

	// decide makes one decision; v.Decide, replaceable in tests to
	// simulate live-state guards.
	decide func(v engine.View, req decision.Request) decision.Result

	identityHeaders []string // canonical names, removed from every request
	streams         *registry
	reeval          reevalState
	stopping        atomic.Bool

	mu      sync.Mutex
	servers []*http.Server
}

var (
	_ http.Handler  = (*Gateway)(nil)
	_ Authenticator = (*identity.Verifier)(nil)
	_ Router        = (*route.Table)(nil)
)

// New builds a gateway. It opens the GeoIP database and loads TLS material
// but serves nothing.
func New(opts Options) (*Gateway, error) {
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	switch {
	case opts.Views == nil:
		return nil, errors.New("gateway: Options.Views is required")
	case opts.Auth == nil:
		return nil, errors.New("gateway: Options.Auth is required")
	case opts.Router == nil:
		return nil, errors.New("gateway: Options.Router is required")
	}
	g := &Gateway{
		cfg:       cfg,
		views:     opts.Views,
		await:     opts.Await,
		auth:      opts.Auth,
		router:    opts.Router,
		log:       opts.Log,
		now:       opts.Now,
		rec:       opts.Recorder,
		enrich:    opts.Enrich,
		obs:       opts.Observe,
		buffers:   newBufferPool(),
		facts:     newFactCache(factCacheSize),
		upstreams: make(map[string]*upstream, len(cfg.Upstreams)),
		streams:   newRegistry(),
		decide:    engine.View.Decide,
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	var err error
	if g.proxies, err = newProxySet(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("gateway config: trusted_proxies: %w", err)
	}
	for _, h := range []string{cfg.IdentityHeaders.Subject, cfg.IdentityHeaders.Roles, cfg.IdentityHeaders.Session} {
		g.identityHeaders = append(g.identityHeaders, http.CanonicalHeaderKey(h))
	}
	for i, uc := range cfg.Upstreams {
		u, err := newUpstream(uc, g)
		if err != nil {
			return nil, err
		}
		g.upstreams[uc.Name] = u
		if i == 0 {
			g.fallback = u
		}
	}
	if cfg.GeoIP != "" {
		if g.geo, err = openGeo(cfg.GeoIP); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Config returns the effective configuration (defaults applied).
func (g *Gateway) Config() Config { return g.cfg }

// ServeHTTP decides the request and forwards it, or answers forward-auth
// requests on the forward-auth path.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.cfg.ForwardAuth.Enable() && rawPath(r) == g.cfg.ForwardAuth.Path {
		g.serveForwardAuth(w, r)
		return
	}
	g.serveProxy(w, r)
}

// inbound is what the gateway reads from the connection and the headers
// that only trusted proxies may set.
type inbound struct {
	rid     string
	peer    netip.Addr
	trusted bool
	ip      netip.Addr
	host    string
	scheme  string
	device  string
}

// readInbound establishes the request id, the client address, host, scheme
// and device id, believing forwarded headers only from trusted proxies.
func (g *Gateway) readInbound(r *http.Request) inbound {
	in := inbound{peer: peerAddr(r.RemoteAddr)}
	in.trusted = g.proxies.contains(in.peer)
	in.scheme = "http"
	if r.TLS != nil {
		in.scheme = "https"
	}
	in.host = r.Host
	in.ip = in.peer
	if in.trusted {
		in.ip = g.proxies.clientAddr(in.peer, r.Header.Values("X-Forwarded-For"))
		if p := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
			in.scheme = p
		}
		if h := strings.TrimSpace(r.Header.Get("X-Forwarded-Host")); h != "" && validHost(h) {
			in.host = h
		}
		if id := r.Header.Get(requestIDHeader); validRequestID(id) {
			in.rid = id
		}
		if g.cfg.DeviceHeader != "" {
			if d := strings.TrimSpace(r.Header.Get(g.cfg.DeviceHeader)); headerSafe(d) && len(d) <= 256 {
				in.device = d
			}
		}
	}
	if in.rid == "" {
		in.rid = newRequestID()
	}
	return in
}

// validHost accepts a host[:port] of visible ASCII without separators that
// could smuggle a path or a second value.
func validHost(h string) bool {
	if len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`/\?#@,"`, c) >= 0 {
			return false
		}
	}
	return true
}

// rawPath returns the request path exactly as the client sent it, without
// the query: the request target of origin-form requests (and HTTP/2
// :path), or the escaped path of absolute-form requests. "" for the
// asterisk form.
func rawPath(r *http.Request) string {
	uri := r.RequestURI
	if strings.HasPrefix(uri, "/") {
		if i := strings.IndexByte(uri, '?'); i >= 0 {
			return uri[:i]
		}
		return uri
	}
	if r.URL == nil || uri == "*" {
		return ""
	}
	return r.URL.EscapedPath()
}

// bearer extracts the bearer token. present is false when no Authorization
// header carries the Bearer scheme; malformed is set for more than one
// Authorization header or an empty token.
func bearer(r *http.Request) (token string, present, malformed bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", false, false
	}
	if len(vals) > 1 {
		return "", true, true
	}
	v := vals[0]
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false, false
	}
	token = strings.TrimSpace(v[7:])
	return token, true, token == ""
}

// decided is the result of the common decision flow.
type decided struct {
	call      *call
	req       decision.Request
	res       decision.Result
	verdict   verdict
	policySeq uint64 // the policy sequence the view reflected
}

// authorize runs route matching, token verification and the decision for
// one request (proxied or forward-auth). It writes the answer itself and
// returns nil when the request is refused before or by the decision.
func (g *Gateway) authorize(w http.ResponseWriter, r *http.Request, in inbound, method, path, surface string) *decided {
	log := g.requestLog(in.rid, "")
	if g.stopping.Load() {
		w.Header().Set("Connection", "close")
		writeProblem(w, http.StatusServiceUnavailable, detailShuttingDown, in.rid, nil)
		return nil
	}
	m, err := g.router.Match(method, path)
	if err != nil {
		var bad *route.BadRequestError
		switch {
		case errors.As(err, &bad):
			log.Info("request rejected", "outcome", OutcomeBadRequest, "method", method, "code", bad.Code, "reason", bad.Message, "ip", in.ip)
			writeProblem(w, http.StatusBadRequest, "The request path or method is not acceptable: "+bad.Message+".", in.rid, map[string]any{"code": bad.Code})
		case errors.Is(err, route.ErrBadRequest):
			log.Info("request rejected", "outcome", OutcomeBadRequest, "method", method, "err", err, "ip", in.ip)
			writeProblem(w, http.StatusBadRequest, "The request path or method is not acceptable.", in.rid, nil)
		case errors.Is(err, route.ErrNoRoute):
			log.Info("request denied", "outcome", OutcomeNoRoute, "method", method, "path", truncate(path, 256), "ip", in.ip)
			g.record(surface, false, 0)
			writeProblem(w, http.StatusForbidden, detailDenied, in.rid, nil)
		default:
			log.Error("route match failed", "outcome", OutcomeError, "err", err)
			writeProblem(w, http.StatusInternalServerError, detailInternal, in.rid, nil)
		}
		return nil
	}
	if m.Route == nil {
		log.Error("route match returned no route", "outcome", OutcomeError)
		writeProblem(w, http.StatusInternalServerError, detailInternal, in.rid, nil)
		return nil
	}

	raw, present, malformed := bearer(r)
	var tok *identity.Token
	switch {
	case malformed:
		log.Info("request unauthenticated", "outcome", OutcomeUnauthenticated, "reason", "malformed Authorization header")
		w.Header().Set("WWW-Authenticate", g.challenge("error", "invalid_request", "error_description", "Send exactly one Authorization header with a bearer token"))
		writeProblem(w, http.StatusBadRequest, "The Authorization header is malformed.", in.rid, nil)
		return nil
	case !present && !m.Route.Anonymous:
		log.Info("request unauthenticated", "outcome", OutcomeUnauthenticated, "reason", "no bearer token", "action", m.Action.String())
		w.Header().Set("WWW-Authenticate", g.noTokenChallenge())
		writeProblem(w, http.StatusUnauthorized, detailNoToken, in.rid, nil)
		return nil
	case present:
		tok, err = g.auth.Verify(r.Context(), raw)
		if err != nil || tok == nil {
			g.refuseToken(w, log, in.rid, err)
			if g.obs != nil {
				g.observeRefused(r, in, surface, string(m.Action.ID), err)
			}
			return nil
		}
	}

	c := &call{
		id:       in.rid,
		method:   method,
		path:     path,
		host:     in.host,
		scheme:   in.scheme,
		ip:       in.ip,
		deviceID: in.device,
		geo:      g.geo.lookup(in.ip),
		token:    tok,
		match:    m,
	}
	view, ok := g.pinView(w, r, log, in.rid)
	if !ok {
		return nil
	}
	start := time.Now()
	now := g.now()
	req := buildRequest(view, c, now, g.enrich, g.facts)
	res := g.decide(view, req)
	v := g.judge(res, tok)
	g.record(surface, v.status == 0, time.Since(start))
	if g.obs != nil {
		g.observe(r, c, surface, v.outcome, now)
	}
	d := &decided{call: c, req: req, res: res, verdict: v, policySeq: view.PolicySeq}
	g.logDecision(log, d, surface)
	if v.status != 0 {
		writeVerdict(w, v, in.rid)
		return nil
	}
	return d
}

// pinView pins the view a request is decided with. It honours the
// read-your-writes headers and refuses (503) to decide without an active
// policy set, below a requested sequence, or on a replica that cannot prove
// it is fresh. It writes the refusal itself and reports false then.
func (g *Gateway) pinView(w http.ResponseWriter, r *http.Request, log *slog.Logger, rid string) (engine.View, bool) {
	want, err := engine.ConsistencyFrom(r.Header)
	if err != nil {
		log.Info("request rejected", "outcome", OutcomeBadRequest, "reason", err.Error())
		writeProblem(w, http.StatusBadRequest, "The "+engine.HeaderMinSeq+" or "+engine.HeaderMinPolicySeq+" header is not a sequence number.", rid, nil)
		return engine.View{}, false
	}
	if !want.IsZero() && g.await != nil {
		if err := g.await(r.Context(), want); err != nil {
			log.Warn("request refused", "outcome", OutcomeUnavailable, "reason", err.Error())
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusServiceUnavailable, detailBehind, rid, nil)
			return engine.View{}, false
		}
	}
	view := g.views()
	switch {
	case !view.Ready():
		log.Warn("request refused", "outcome", OutcomeUnavailable, "reason", "no active policy set")
		w.Header().Set("Retry-After", "5")
		writeProblem(w, http.StatusServiceUnavailable, detailNoPolicy, rid, nil)
		return engine.View{}, false
	case !view.Reflects(want):
		log.Warn("request refused", "outcome", OutcomeUnavailable, "reason", "below the requested sequence",
			"state_seq", view.StateSeq(), "policy_seq", view.PolicySeq, "min_seq", want.StateSeq, "min_policy_seq", want.PolicySeq)
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, detailBehind, rid, nil)
		return engine.View{}, false
	case view.Stale != nil:
		log.Warn("request refused", "outcome", OutcomeUnavailable, "reason", view.Stale.Error())
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, detailStale, rid, nil)
		return engine.View{}, false
	}
	return view, true
}

// refuseToken answers a request whose token failed verification.
func (g *Gateway) refuseToken(w http.ResponseWriter, log *slog.Logger, rid string, err error) {
	var ie *identity.Error
	if errors.As(err, &ie) {
		if ie.Temporary {
			log.Warn("token not verifiable", "outcome", OutcomeUnavailable, "reason", ie.Error())
			w.Header().Set("Retry-After", "5")
			writeProblem(w, http.StatusServiceUnavailable, detailTokenCheck, rid, nil)
			return
		}
		log.Info("request unauthenticated", "outcome", OutcomeUnauthenticated, "reason", ie.Error())
		w.Header().Set("WWW-Authenticate", g.invalidTokenChallenge(ie.Description))
		writeProblem(w, http.StatusUnauthorized, detailInvalidToken, rid, nil)
		return
	}
	if err == nil {
		err = errors.New("verifier returned no token")
	}
	log.Info("request unauthenticated", "outcome", OutcomeUnauthenticated, "reason", err.Error())
	w.Header().Set("WWW-Authenticate", g.invalidTokenChallenge(detailInvalidToken))
	writeProblem(w, http.StatusUnauthorized, detailInvalidToken, rid, nil)
}

func (g *Gateway) record(surface string, allow bool, d time.Duration) {
	if g.rec != nil {
		g.rec.Decision(surface, allow, d)
	}
}

// logDecision logs a decision: denials at info with the policies that
// determined them (never sent to the client), allows at debug.
func (g *Gateway) logDecision(log *slog.Logger, d *decided, surface string) {
	level := slog.LevelDebug
	if d.verdict.status != 0 {
		level = slog.LevelInfo
	}
	if !log.Enabled(context.Background(), level) {
		return
	}
	attrs := []any{
		"surface", surface,
		"outcome", d.verdict.outcome,
		"principal", d.req.Principal.String(),
		"action", d.req.Action.String(),
		"resource", d.req.Resource.String(),
		"policies", d.res.Reasons(),
		"policy_version", d.res.PolicyVersion,
		"policy_seq", d.policySeq,
		"state_seq", d.res.StateSeq,
		"ip", d.call.ip,
	}
	if d.res.Guard != "" {
		attrs = append(attrs, "guard", d.res.Guard, "revoked_at", d.res.RevokedAt)
	}
	if len(d.res.Errors) > 0 {
		attrs = append(attrs, "errors", d.res.Errors)
	}
	log.Log(context.Background(), level, "decision", attrs...)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// serveProxy is the reverse-proxy flow.
func (g *Gateway) serveProxy(w http.ResponseWriter, r *http.Request) {
	in := g.readInbound(r)
	w.Header().Set(requestIDHeader, in.rid)
	path := rawPath(r)
	if path == "" {
		writeProblem(w, http.StatusBadRequest, "The request target is not acceptable.", in.rid, nil)
		return
	}
	d := g.authorize(w, r, in, r.Method, path, SurfaceGateway)
	if d == nil {
		return
	}
	up := g.fallback
	if up == nil && d.call.match.Route.Upstream == "" {
		// A forward-auth-only gateway: nothing to proxy to.
		writeProblem(w, http.StatusNotFound, "This gateway only answers forward-auth requests.", in.rid, nil)
		return
	}
	if name := d.call.match.Route.Upstream; name != "" {
		if up = g.upstreams[name]; up == nil {
			g.log.Error("route names an unknown upstream", "request_id", in.rid, "upstream", name)
			writeProblem(w, http.StatusBadGateway, detailUpstreamDown, in.rid, nil)
			return
		}
	}
	st := &proxyState{in: in, call: d.call, up: up}
	if isWebSocket(r) {
		g.proxyWebSocket(w, r, st)
		return
	}
	if r.Header.Get("Upgrade") != "" {
		// Only WebSocket upgrades are proxied (and kept under evaluation);
		// any other protocol switch is refused by dropping the offer.
		r.Header.Del("Upgrade")
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	st.cancel = cancel
	defer st.unregister(g)
	up.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, stateKey{}, st)))
}

// stateKey is the context key of the per-request proxyState.
type stateKey struct{}

// proxyState travels with a proxied request through ReverseProxy's hooks.
type proxyState struct {
	in     inbound
	call   *call
	up     *upstream
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	stream *stream // set when the response is long-lived
}

func (st *proxyState) unregister(g *Gateway) {
	st.mu.Lock()
	s := st.stream
	st.mu.Unlock()
	if s != nil {
		g.streams.remove(s)
	}
}

// rewrite builds the upstream request: target URL, header hygiene,
// forwarding headers and the verified identity.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	st, _ := pr.In.Context().Value(stateKey{}).(*proxyState)
	if st == nil { // cannot happen: every request passes serveProxy
		return
	}
	pr.SetURL(st.up.target)
	if st.up.cfg.PreserveHost {
		pr.Out.Host = pr.In.Host
	}
	g.outboundHeaders(pr.Out.Header, pr.In, st)
}

// outboundHeaders applies header hygiene and sets the forwarding and
// identity headers on h, the headers of the request sent upstream (already
// cloned from in and stripped of hop-by-hop headers).
func (g *Gateway) outboundHeaders(h http.Header, in *http.Request, st *proxyState) {
	for _, k := range g.identityHeaders {
		h.Del(k)
	}
	if !st.in.trusted {
		for k := range h {
			if strings.HasPrefix(k, "X-Forwarded-") || strings.HasPrefix(k, "X-Original-") || k == "X-Real-Ip" {
				delete(h, k)
			}
		}
		if g.cfg.DeviceHeader != "" {
			h.Del(g.cfg.DeviceHeader)
		}
	}
	h.Del("Forwarded")
	if !st.up.cfg.PassesAuthorization() {
		h.Del("Authorization")
	}
	peer := st.in.peer.String()
	if prior := in.Header.Values("X-Forwarded-For"); st.in.trusted && len(prior) > 0 {
		h.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+peer)
	} else {
		h.Set("X-Forwarded-For", peer)
	}
	h.Set("X-Forwarded-Proto", st.in.scheme)
	h.Set("X-Forwarded-Host", st.in.host)
	h.Set(requestIDHeader, st.in.rid)
	g.setIdentityHeaders(h, st.call.token, st.in.rid)
}

// setIdentityHeaders sets the verified identity headers. Values that are
// not plain visible ASCII are left out rather than mangled.
func (g *Gateway) setIdentityHeaders(h http.Header, tok *identity.Token, rid string) {
	if tok == nil {
		return
	}
	ih := g.cfg.IdentityHeaders
	if headerSafe(tok.Subject) {
		h.Set(ih.Subject, tok.Subject)
	} else {
		g.log.Warn("subject not sent upstream: not a plain ASCII header value", "request_id", rid)
	}
	if tok.SessionID != "" && headerSafe(tok.SessionID) {
		h.Set(ih.Session, tok.SessionID)
	}
	if len(tok.Roles) > 0 {
		roles := make([]string, 0, len(tok.Roles))
		for _, r := range tok.Roles {
			if headerSafe(r) && !strings.Contains(r, ",") {
				roles = append(roles, r)
			}
		}
		if len(roles) > 0 {
			h.Set(ih.Roles, strings.Join(roles, ","))
		}
	}
}

// modifyResponse registers long-lived responses for re-evaluation and
// keeps the gateway's request id.
func (g *Gateway) modifyResponse(res *http.Response) error {
	res.Header.Del(requestIDHeader)
	st, _ := res.Request.Context().Value(stateKey{}).(*proxyState)
	if st == nil || !longLived(res) {
		return nil
	}
	kind := StreamKindStreaming
	if isEventStream(res.Header.Get("Content-Type")) {
		kind = StreamKindSSE
	}
	body := &cutBody{ReadCloser: res.Body}
	res.Body = body
	s := &stream{kind: kind, call: st.call, started: g.now()}
	s.cut = func(_ websocket.StatusCode, reason string) {
		body.cut.Store(true)
		st.cancel(errStreamCut{reason: reason})
	}
	st.mu.Lock()
	st.stream = s
	st.mu.Unlock()
	g.register(s)
	return nil
}

// longLived reports whether a response streams: an event stream, or a body
// of unknown length.
func longLived(res *http.Response) bool {
	if res.StatusCode < 200 || res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified {
		return false
	}
	if res.Request != nil && res.Request.Method == http.MethodHead {
		return false
	}
	return res.ContentLength < 0 || isEventStream(res.Header.Get("Content-Type"))
}

func isEventStream(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// errStreamCut is the cancellation cause of a stream closed by
// re-evaluation or shutdown.
type errStreamCut struct{ reason string }

func (e errStreamCut) Error() string { return "stream closed: " + e.reason }

// proxyError answers upstream failures: 504 for timeouts, 502 otherwise.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*proxyState)
	rid, name := "", ""
	if st != nil {
		rid, name = st.in.rid, st.up.cfg.Name
	}
	log := g.log.With("request_id", rid, "upstream", name)
	var cut errStreamCut
	if errors.As(context.Cause(r.Context()), &cut) {
		log.Info("stream closed before the upstream answered", "reason", cut.reason)
		writeProblem(w, http.StatusForbidden, detailDenied, rid, nil)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; the answer most likely reaches no one.
		log.Debug("client went away before the upstream answered", "err", err)
		writeProblem(w, http.StatusBadGateway, detailUpstreamDown, rid, nil)
		return
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		log.Warn("upstream timed out", "err", err)
		writeProblem(w, http.StatusGatewayTimeout, detailUpstreamSlow, rid, nil)
		return
	}
	log.Warn("upstream failed", "err", err)
	writeProblem(w, http.StatusBadGateway, detailUpstreamDown, rid, nil)
}
