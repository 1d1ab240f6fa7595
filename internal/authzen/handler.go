package authzen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/vigil-authz/vigil/internal/engine"
)

// Default endpoint paths of AuthZEN 1.0 and the metadata path.
const (
	PathEvaluation     = "/access/v1/evaluation"
	PathEvaluations    = "/access/v1/evaluations"
	PathSearchSubject  = "/access/v1/search/subject"
	PathSearchResource = "/access/v1/search/resource"
	PathSearchAction   = "/access/v1/search/action"
	PathMetadata       = "/.well-known/authzen-configuration"
)

// Surfaces reported to the Recorder.
const (
	SurfaceEvaluation  = "authzen.evaluation"
	SurfaceEvaluations = "authzen.evaluations"
	SurfaceSearch      = "authzen.search"
)

// HeaderExplain is the request header that asks for an explanation in the
// response context ("true" or "1").
const HeaderExplain = "X-Vigil-Explain"

// Recorder receives one call per decision made (metrics).
type Recorder interface {
	Decision(surface string, allow bool, d time.Duration)
}

// Options configure a Handler.
type Options struct {
	// Views returns the current engine view. It is called once per HTTP
	// request; every decision of that request uses the same view.
	Views func() engine.View
	// Await, when set, waits until a view would reflect the minimum
	// sequences a request asks for with X-Vigil-Min-Seq and
	// X-Vigil-Min-Policy-Seq (engine.Engine.Await). Without it such
	// requests are answered only when the current view already does.
	Await func(ctx context.Context, c engine.Consistency) error
	// Issuer is the PDP identifier and base URL published in the metadata
	// (see Config.Issuer). Its path, if any, prefixes every endpoint.
	Issuer string
	// Limits bound requests; zero fields take defaults.
	Limits Limits
	// Recorder, if set, is told about every decision.
	Recorder Recorder
	// Log receives problems worth an operator's attention; nil discards.
	Log *slog.Logger
	// DisableExplain ignores the X-Vigil-Explain header.
	DisableExplain bool
	// ActionType is the Cedar entity type of actions (default "Action";
	// set e.g. "Acme::Action" for a namespaced schema).
	ActionType string
}

// Handler serves the AuthZEN Authorization API. It is safe for concurrent
// use; construct it with New.
type Handler struct {
	views      func() engine.View
	await      func(ctx context.Context, c engine.Consistency) error
	limits     Limits
	rec        Recorder
	log        *slog.Logger
	explain    bool
	actionType types.EntityType

	issuer     string // normalised, no trailing slash; "" = derive per request
	paths      [5]string
	pathMeta   string
	metadata   []byte // precomputed when issuer is set
	bufs       sync.Pool
	parsers    sync.Pool
	catalog    atomic.Pointer[catalog]
	maxBufKeep int
}

const (
	epEvaluation = iota
	epEvaluations
	epSearchSubject
	epSearchResource
	epSearchAction
)

var _ http.Handler = (*Handler)(nil)

// New returns a Handler. An invalid Issuer or ActionType is logged and
// ignored (Config.Validate reports it before this point in a normal start).
func New(opts Options) *Handler {
	h := &Handler{
		views:      opts.Views,
		await:      opts.Await,
		limits:     opts.Limits,
		rec:        opts.Recorder,
		log:        opts.Log,
		explain:    !opts.DisableExplain,
		actionType: "Action",
		maxBufKeep: 64 << 10,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.views == nil {
		h.views = func() engine.View { return engine.View{} }
	}
	h.limits.SetDefaults()
	if opts.ActionType != "" {
		if t, err := types.NewEntityType(opts.ActionType); err != nil {
			h.log.Error("authzen: ignoring invalid action type", "action_type", opts.ActionType, "error", err)
		} else {
			h.actionType = t
		}
	}
	prefix := ""
	if opts.Issuer != "" {
		if u, err := parseIssuer(opts.Issuer); err != nil {
			h.log.Error("authzen: ignoring invalid issuer; metadata will be derived from each request", "error", err)
		} else {
			h.issuer = u.String()
			prefix = u.Path
		}
	}
	h.paths = [5]string{
		prefix + PathEvaluation, prefix + PathEvaluations,
		prefix + PathSearchSubject, prefix + PathSearchResource, prefix + PathSearchAction,
	}
	h.pathMeta = PathMetadata + prefix
	if h.issuer != "" {
		h.metadata = h.metadataFor(h.issuer)
	}
	h.bufs.New = func() any { return new(bytes.Buffer) }
	h.parsers.New = func() any { return new(parser) }
	return h
}

// Paths returns the request paths the handler serves, for mounting it on a
// mux: the five API endpoints and the metadata document.
func (h *Handler) Paths() []string {
	return append(h.paths[:], h.pathMeta)
}

// ServeHTTP routes an AuthZEN request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := r.Header.Get("X-Request-ID")
	if rid != "" {
		w.Header().Set("X-Request-ID", rid)
	}
	p := r.URL.Path
	for ep, want := range h.paths {
		if p == want {
			h.serveAPI(w, r, ep, rid)
			return
		}
	}
	if p == h.pathMeta {
		h.serveMetadata(w, r)
		return
	}
	h.problem(w, r, http.StatusNotFound, "no AuthZEN endpoint at "+strconv.Quote(p)+"; see "+h.pathMeta, rid)
}

// call is the state of one API request.
type call struct {
	view    engine.View
	explain bool
}

func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, ep int, rid string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.problem(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed; AuthZEN endpoints accept POST", rid)
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		h.problem(w, r, http.StatusUnsupportedMediaType, "Content-Type must be application/json", rid)
		return
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	defer h.putBuf(buf)
	buf.Reset()
	if status, msg := h.readBody(w, r, buf); status != 0 {
		h.problem(w, r, status, msg, rid)
		return
	}
	p := h.parsers.Get().(*parser)
	defer func() {
		if p.release() {
			h.parsers.Put(p)
		}
	}()
	doc, err := p.decode(buf, h.limits.MaxDepth)
	if err != nil {
		h.problem(w, r, http.StatusBadRequest, err.Error(), rid)
		return
	}
	if doc.kind != kindObject {
		h.problem(w, r, http.StatusBadRequest, "request body must be a JSON object, got "+doc.kind.String(), rid)
		return
	}
	want, err := engine.ConsistencyFrom(r.Header)
	if err != nil {
		h.problem(w, r, http.StatusBadRequest, err.Error(), rid)
		return
	}
	if !want.IsZero() && h.await != nil {
		if err := h.await(r.Context(), want); err != nil {
			w.Header().Set("Retry-After", "1")
			h.problem(w, r, http.StatusServiceUnavailable, err.Error()+"; retry shortly", rid)
			return
		}
	}
	c := call{view: h.views(), explain: h.explain && wantsExplain(r.Header.Get(HeaderExplain))}
	switch {
	case !c.view.Ready():
		w.Header().Set("Retry-After", "1")
		h.problem(w, r, http.StatusServiceUnavailable, "no policy set is active yet; retry once Vigil has loaded its policies", rid)
		return
	case !c.view.Reflects(want):
		w.Header().Set("Retry-After", "1")
		h.problem(w, r, http.StatusServiceUnavailable, fmt.Sprintf("%s: this PDP is at state seq %d and policy seq %d; retry shortly",
			engine.ErrBehind, c.view.StateSeq(), c.view.PolicySeq), rid)
		return
	case c.view.Stale != nil:
		w.Header().Set("Retry-After", "1")
		h.problem(w, r, http.StatusServiceUnavailable, c.view.Stale.Error()+"; retry on another replica or shortly", rid)
		return
	}
	var (
		status int
		msg    string
	)
	switch ep {
	case epEvaluation:
		status, msg = h.evaluation(w, &c, &doc)
	case epEvaluations:
		status, msg = h.evaluations(w, &c, &doc)
	default:
		status, msg = h.search(w, &c, &doc, searchKind(ep-epSearchSubject))
	}
	if status != 0 {
		h.problem(w, r, status, msg, rid)
	}
}

// readBody reads the request body into buf within the size limit. It
// returns a non-zero status and a message on failure.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) (int, string) {
	max := h.limits.MaxBodyBytes
	tooLarge := "request body is larger than " + strconv.FormatInt(max, 10) + " bytes; split the batch or shrink the values"
	if r.ContentLength > max {
		return http.StatusRequestEntityTooLarge, tooLarge
	}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, tooLarge
		}
		return http.StatusBadRequest, "could not read the request body: " + err.Error()
	}
	return 0, ""
}

func (h *Handler) putBuf(b *bytes.Buffer) {
	if b.Cap() <= h.maxBufKeep {
		h.bufs.Put(b)
	}
}

// isJSON accepts application/json with no charset or charset=utf-8.
func isJSON(ct string) bool {
	if ct == "application/json" {
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	return true
}

func wantsExplain(v string) bool {
	return v != "" && (strings.EqualFold(v, "true") || v == "1")
}

// Header values shared by every response; net/http only reads them.
var (
	hdrJSON    = []string{"application/json"}
	hdrNoStore = []string{"no-store"}
)

// writeJSON writes a 200 JSON response. Decisions are never cacheable.
// (net/http adds Content-Length for bodies this small.)
func writeJSON(w http.ResponseWriter, body []byte) {
	hd := w.Header()
	hd["Content-Type"] = hdrJSON
	hd["Cache-Control"] = hdrNoStore
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// problem writes an RFC 9457 problem document. detail names the field at
// fault and what to do.
func (h *Handler) problem(w http.ResponseWriter, r *http.Request, status int, detail, rid string) {
	b := make([]byte, 0, 96+len(detail))
	b = append(b, `{"type":"about:blank","title":`...)
	b, _ = jsontext.AppendQuote(b, http.StatusText(status))
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"detail":`...)
	b, _ = jsontext.AppendQuote(b, strings.ToValidUTF8(detail, "\uFFFD"))
	b = append(b, '}')
	hd := w.Header()
	hd.Set("Content-Type", "application/problem+json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelWarn
	}
	if h.log.Enabled(r.Context(), level) {
		h.log.LogAttrs(context.WithoutCancel(r.Context()), level, "authzen request rejected",
			slog.String("request_id", rid), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.String("detail", detail))
	}
}

// serveMetadata answers GET /.well-known/authzen-configuration[/<path>].
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.problem(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed; the metadata document is read with GET", r.Header.Get("X-Request-ID"))
		return
	}
	body := h.metadata
	if body == nil {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		body = h.metadataFor(scheme + "://" + r.Host)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "max-age=300")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// metadataFor renders the metadata document for a PDP identifier. The
// endpoints are the identifier plus the default paths.
func (h *Handler) metadataFor(pdp string) []byte {
	keys := [...]string{"access_evaluation_endpoint", "access_evaluations_endpoint",
		"search_subject_endpoint", "search_resource_endpoint", "search_action_endpoint"}
	defaults := [...]string{PathEvaluation, PathEvaluations, PathSearchSubject, PathSearchResource, PathSearchAction}
	b := []byte(`{"policy_decision_point":`)
	b, _ = jsontext.AppendQuote(b, pdp)
	for i, k := range keys {
		b = append(b, ',', '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		b, _ = jsontext.AppendQuote(b, pdp+defaults[i])
	}
	return append(b, '}')
}
