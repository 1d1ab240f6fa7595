package signal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-authz/vigil/internal/state"
)

// Publisher appends a signal to the journal and returns once it is in
// force. *state.Store implements it.
type Publisher interface {
	Publish(ctx context.Context, sig state.Signal) (uint64, error)
}

var _ Publisher = (*state.Store)(nil)

// ErrNotReady means the transmitter's keys are not loaded yet (metadata or
// JWKS fetch pending or failing); the push handler answers 503.
var ErrNotReady = errors.New("transmitter keys not loaded yet")

// Receiver verifies SETs from the configured transmitters, normalises them
// and publishes them. It serves the push endpoint (ServeHTTP) and runs the
// poll clients (Run).
//
// Lifecycle: New does no I/O. Run fetches each transmitter's metadata and
// keys (retrying with backoff), then polls the transmitters configured for
// poll, until its context is cancelled. Pushes that arrive before a
// transmitter's keys are loaded get 503, which transmitters retry.
type Receiver struct {
	log     *slog.Logger
	pub     Publisher
	client  *http.Client
	now     func() time.Time
	metrics *receiverMetrics

	byName   map[string]*transmitter
	byIssuer map[string]*transmitter
	order    []*transmitter

	mu    sync.RWMutex
	cache *jwk.Cache // set by Run
}

// transmitter is the runtime state of one configured transmitter.
type transmitter struct {
	cfg  TransmitterConfig
	algs []string

	mu          sync.Mutex
	jwksURI     string
	critical    []string
	ready       bool
	lastRefresh time.Time
	expectState string
	status      string
	reason      string
}

// Option adjusts a Receiver.
type Option func(*Receiver)

// WithHTTPClient sets the client for metadata, JWKS and poll requests.
// The default has a 30s timeout (poll requests use their own timeout).
func WithHTTPClient(c *http.Client) Option { return func(r *Receiver) { r.client = c } }

// WithRegisterer registers the receiver's metrics.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(r *Receiver) { r.metrics = newReceiverMetrics(reg) }
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(r *Receiver) { r.now = now } }

// New builds a receiver for a defaulted, validated config.
func New(cfg Config, pub Publisher, logger *slog.Logger, opts ...Option) *Receiver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{
		log:      logger,
		pub:      pub,
		client:   &http.Client{Timeout: 30 * time.Second},
		now:      time.Now,
		byName:   map[string]*transmitter{},
		byIssuer: map[string]*transmitter{},
	}
	for _, o := range opts {
		o(r)
	}
	if r.metrics == nil {
		r.metrics = newReceiverMetrics(nil)
	}
	for _, tc := range cfg.Transmitters {
		t := &transmitter{cfg: tc, algs: tc.Algorithms, jwksURI: tc.JWKSURI}
		r.byName[tc.Name] = t
		r.byIssuer[tc.Issuer] = t
		r.order = append(r.order, t)
	}
	return r
}

// Run loads every transmitter's keys and runs the poll clients until ctx
// is cancelled. It returns nil on cancellation.
func (r *Receiver) Run(ctx context.Context) error {
	cache, err := jwk.NewCache(ctx, httprc.NewClient())
	if err != nil {
		return fmt.Errorf("start JWKS cache: %w", err)
	}
	r.mu.Lock()
	r.cache = cache
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range r.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !r.setup(ctx, t) {
				return
			}
			if t.cfg.Poll != nil {
				r.poll(ctx, t)
			}
		}()
	}
	<-ctx.Done()
	wg.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cache.Shutdown(sctx)
	return nil
}

// Ready reports whether every transmitter's keys are loaded.
func (r *Receiver) Ready() bool {
	for _, t := range r.order {
		t.mu.Lock()
		ok := t.ready
		t.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

// setup discovers metadata and registers the JWKS, retrying with backoff
// until it succeeds or ctx ends.
func (r *Receiver) setup(ctx context.Context, t *transmitter) bool {
	var bo backoff
	for {
		err := r.load(ctx, t)
		if err == nil {
			t.mu.Lock()
			t.ready = true
			t.mu.Unlock()
			r.log.Info("ssf transmitter ready", "transmitter", t.cfg.Name, "issuer", t.cfg.Issuer, "jwks_uri", t.jwksURI)
			return true
		}
		d := bo.next()
		r.log.Warn("ssf transmitter keys unavailable; retrying", "transmitter", t.cfg.Name, "err", err, "retry_in", d)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
		}
	}
}

func (r *Receiver) load(ctx context.Context, t *transmitter) error {
	if t.cfg.ConfigurationURL != "" {
		md, err := r.fetchMetadata(ctx, t.cfg.ConfigurationURL, t.cfg.Issuer)
		if err != nil {
			return err
		}
		t.mu.Lock()
		t.jwksURI, t.critical = md.JWKSURI, md.CriticalSubjectMembers
		t.mu.Unlock()
	}
	r.mu.RLock()
	cache := r.cache
	r.mu.RUnlock()
	if cache.IsRegistered(ctx, t.jwksURI) {
		_, err := cache.Refresh(ctx, t.jwksURI)
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cache.Register(rctx, t.jwksURI,
		jwk.WithHTTPClient(r.client),
		jwk.WithMinInterval(time.Minute),
		jwk.WithMaxInterval(24*time.Hour),
		jwk.WithWaitReady(true),
	); err != nil {
		return fmt.Errorf("fetch JWKS %s: %w", t.jwksURI, err)
	}
	if _, err := cache.Lookup(ctx, t.jwksURI); err != nil {
		_ = cache.Unregister(ctx, t.jwksURI)
		return fmt.Errorf("fetch JWKS %s: %w", t.jwksURI, err)
	}
	return nil
}

// Metadata is the part of a transmitter's SSF configuration Vigil uses.
type Metadata struct {
	SpecVersion              string   `json:"spec_version"`
	Issuer                   string   `json:"issuer"`
	JWKSURI                  string   `json:"jwks_uri"`
	DeliveryMethodsSupported []string `json:"delivery_methods_supported"`
	ConfigurationEndpoint    string   `json:"configuration_endpoint"`
	StatusEndpoint           string   `json:"status_endpoint"`
	AddSubjectEndpoint       string   `json:"add_subject_endpoint"`
	RemoveSubjectEndpoint    string   `json:"remove_subject_endpoint"`
	VerificationEndpoint     string   `json:"verification_endpoint"`
	CriticalSubjectMembers   []string `json:"critical_subject_members"`
}

// fetchMetadata reads /.well-known/ssf-configuration; issuer must match.
func (r *Receiver) fetchMetadata(ctx context.Context, u, issuer string) (*Metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("ssf configuration %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ssf configuration %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ssf configuration %s: HTTP %d", u, resp.StatusCode)
	}
	var md Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<10)).Decode(&md); err != nil {
		return nil, fmt.Errorf("ssf configuration %s: %w", u, err)
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("ssf configuration %s: issuer %q is not the configured %q", u, md.Issuer, issuer)
	}
	if err := checkURL(md.JWKSURI); err != nil {
		return nil, fmt.Errorf("ssf configuration %s: jwks_uri: %w", u, err)
	}
	if md.SpecVersion == "" {
		md.SpecVersion = "1_0-ID1"
	}
	return &md, nil
}

// Outcome is what happened to one SET.
type Outcome string

// Outcomes.
const (
	OutcomeApplied  Outcome = "applied"  // journalled and in force
	OutcomeIgnored  Outcome = "ignored"  // valid, nothing to act on
	OutcomeStream   Outcome = "stream"   // SSF stream event (verification, stream-updated)
	OutcomeRejected Outcome = "rejected" // invalid SET (*SETError)
)

// verify checks a SET. t is the transmitter it must come from (poll), or
// nil to pick it by the unverified iss (push).
func (r *Receiver) verify(ctx context.Context, t *transmitter, raw []byte) (*SET, *transmitter, error) {
	raw = bytes.TrimSpace(raw)
	// The allowlist is per transmitter, which may not be known yet: check
	// against the union first, then against the transmitter's own list.
	allowedAny := func(alg string) bool {
		if t != nil {
			return slices.Contains(t.algs, alg)
		}
		for _, tt := range r.order {
			if slices.Contains(tt.algs, alg) {
				return true
			}
		}
		return false
	}
	h, payload, err := parseJWS(raw, allowedAny)
	if err != nil {
		return nil, t, err
	}
	iss, err := peekIssuer(payload)
	if err != nil {
		return nil, t, err
	}
	if t == nil {
		t = r.byIssuer[iss]
		if t == nil {
			return nil, nil, setErr(CodeInvalidIssuer, "no transmitter is configured for iss %q", truncate(iss))
		}
		if !slices.Contains(t.algs, h.alg) {
			return nil, t, setErr(CodeInvalidRequest, "alg %q is not allowed for this transmitter", h.alg)
		}
	} else if iss != t.cfg.Issuer {
		return nil, t, setErr(CodeInvalidIssuer, "iss %q is not %q", truncate(iss), t.cfg.Issuer)
	}
	keys, err := r.keys(ctx, t, h.kid)
	if err != nil {
		return nil, t, err
	}
	alg, ok := jwa.LookupSignatureAlgorithm(h.alg)
	if !ok {
		return nil, t, setErr(CodeInvalidRequest, "alg %q is unknown", h.alg)
	}
	var verified []byte
	for _, k := range keys {
		if ka, ok := k.Algorithm(); ok && ka.String() != h.alg {
			continue // a key bound to another algorithm never verifies this one
		}
		if p, err := jws.Verify(raw, jws.WithKey(alg, k)); err == nil {
			verified = p
			break
		}
	}
	if verified == nil {
		return nil, t, setErr(CodeInvalidKey, "signature does not verify with the transmitter's keys (kid %q)", truncate(h.kid))
	}
	set, err := parseClaims(verified, t.cfg.Issuer, t.cfg.Audience)
	if err != nil {
		return nil, t, err
	}
	set.Algorithm, set.KeyID = h.alg, h.kid
	return set, t, nil
}

// keys returns the transmitter's candidate verification keys: the one with
// kid (refreshing the JWKS once, rate-limited, when kid is unknown), or all
// keys when the SET has no kid.
func (r *Receiver) keys(ctx context.Context, t *transmitter, kid string) ([]jwk.Key, error) {
	t.mu.Lock()
	ready, uri := t.ready, t.jwksURI
	t.mu.Unlock()
	r.mu.RLock()
	cache := r.cache
	r.mu.RUnlock()
	if !ready || cache == nil {
		return nil, ErrNotReady
	}
	set, err := cache.Lookup(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	if kid == "" {
		out := make([]jwk.Key, 0, set.Len())
		for i := range set.Len() {
			if k, ok := set.Key(i); ok {
				out = append(out, k)
			}
		}
		return out, nil
	}
	if k, ok := set.LookupKeyID(kid); ok {
		return []jwk.Key{k}, nil
	}
	t.mu.Lock()
	refresh := r.now().Sub(t.lastRefresh) >= 10*time.Second
	if refresh {
		t.lastRefresh = r.now()
	}
	t.mu.Unlock()
	if refresh {
		if set, err = cache.Refresh(ctx, uri); err == nil {
			if k, ok := set.LookupKeyID(kid); ok {
				return []jwk.Key{k}, nil
			}
		} else {
			r.log.Warn("JWKS refresh failed", "transmitter", t.cfg.Name, "err", err)
		}
	}
	return nil, setErr(CodeInvalidKey, "kid %q is not in the transmitter's JWKS", truncate(kid))
}

// ingest verifies, normalises and publishes one SET. Errors: *SETError
// (reject the SET), ErrNotReady or a publish error (retry later).
func (r *Receiver) ingest(ctx context.Context, t *transmitter, raw []byte) (Outcome, *transmitter, error) {
	set, t, err := r.verify(ctx, t, raw)
	if err != nil {
		return r.rejected(t, err), t, err
	}
	out, err := r.process(ctx, t, set)
	return out, t, err
}

// rejected records a verification failure.
func (r *Receiver) rejected(t *transmitter, err error) Outcome {
	var se *SETError
	if !errors.As(err, &se) {
		return ""
	}
	name := "unknown"
	if t != nil {
		name = t.cfg.Name
	}
	r.metrics.sets.WithLabelValues(name, string(OutcomeRejected)).Inc()
	r.log.Warn("SET rejected", "transmitter", name, "err", se.Code, "description", se.Description)
	return OutcomeRejected
}

// process acts on a verified SET.
func (r *Receiver) process(ctx context.Context, t *transmitter, set *SET) (Outcome, error) {
	name := t.cfg.Name
	log := r.log.With("transmitter", name, "jti", set.JTI, "event", set.EventType)
	switch set.EventType {
	case EventVerification, EventStreamUpdated:
		if err := r.streamEvent(t, set, log); err != nil {
			r.metrics.sets.WithLabelValues(name, string(OutcomeRejected)).Inc()
			return OutcomeRejected, err
		}
		r.metrics.sets.WithLabelValues(name, string(OutcomeStream)).Inc()
		return OutcomeStream, nil
	}
	if err := r.checkCritical(t, set.Subject); err != nil {
		r.metrics.sets.WithLabelValues(name, string(OutcomeIgnored)).Inc()
		log.Warn("SET dropped: subject has critical members Vigil cannot process", "err", err)
		return OutcomeIgnored, nil
	}
	sig, err := Normalize(set)
	if err != nil {
		r.metrics.sets.WithLabelValues(name, string(OutcomeRejected)).Inc()
		log.Warn("SET rejected", "err", err)
		return OutcomeRejected, err
	}
	if sig.Kind == state.KindIgnored {
		r.metrics.sets.WithLabelValues(name, string(OutcomeIgnored)).Inc()
		log.Info("SET accepted and ignored: Vigil does not act on this event", "subject", set.Subject.String())
		return OutcomeIgnored, nil
	}
	seq, err := r.pub.Publish(ctx, sig)
	if err != nil {
		if errors.Is(err, state.ErrInvalid) {
			r.metrics.sets.WithLabelValues(name, string(OutcomeRejected)).Inc()
			log.Warn("SET rejected", "err", err)
			return OutcomeRejected, setErr(CodeInvalidRequest, "%v", err)
		}
		r.metrics.sets.WithLabelValues(name, "unavailable").Inc()
		log.Error("SET not journalled; the transmitter will retry", "err", err)
		return "", err
	}
	r.metrics.sets.WithLabelValues(name, string(OutcomeApplied)).Inc()
	log.Info("signal applied", "kind", sig.Kind, "subject", set.Subject.String(), "seq", seq)
	return OutcomeApplied, nil
}

// checkCritical drops subjects carrying a critical_subject_members member
// that Vigil does not match on (org_unit, group).
func (r *Receiver) checkCritical(t *transmitter, s state.Subject) error {
	t.mu.Lock()
	crit := t.critical
	t.mu.Unlock()
	if s.Format != state.FormatComplex {
		return nil
	}
	for _, m := range crit {
		switch {
		case m == "org_unit" && s.OrgUnit != nil, m == "group" && s.Group != nil:
			return fmt.Errorf("critical member %s is not supported", m)
		}
	}
	return nil
}

// streamEvent handles SSF verification and stream-updated events.
func (r *Receiver) streamEvent(t *transmitter, set *SET, log *slog.Logger) error {
	var ev eventFields
	if err := json.Unmarshal(set.Event, &ev); err != nil {
		return setErr(CodeInvalidRequest, "event: %v", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if set.EventType == EventVerification {
		got := ""
		if ev.State != nil {
			got = *ev.State
		}
		if t.expectState != "" && got != t.expectState {
			log.Warn("SSF verification with an unexpected state")
			return setErr(CodeInvalidState, "verification state does not match the one requested")
		}
		t.expectState = ""
		log.Info("SSF stream verified", "state", got)
		r.metrics.verified.WithLabelValues(t.cfg.Name).SetToCurrentTime()
		return nil
	}
	if ev.Status == "" {
		return setErr(CodeInvalidRequest, "stream-updated needs status")
	}
	if t.status != "" {
		r.metrics.status.DeleteLabelValues(t.cfg.Name, t.status)
	}
	t.status, t.reason = truncate(ev.Status), firstText(ev.Reason)
	r.metrics.status.WithLabelValues(t.cfg.Name, t.status).Set(1)
	log.Warn("SSF stream status changed", "status", t.status, "reason", t.reason)
	return nil
}

// ExpectVerification records the state Vigil sent in a verification
// request to the named transmitter; the next verification event must echo
// it or is answered with invalid_state.
func (r *Receiver) ExpectVerification(name, want string) error {
	t := r.byName[name]
	if t == nil {
		return fmt.Errorf("no transmitter named %q", name)
	}
	t.mu.Lock()
	t.expectState = want
	t.mu.Unlock()
	return nil
}

// StreamStatus returns the last status a transmitter announced with
// stream-updated ("" if none).
func (r *Receiver) StreamStatus(name string) (status, reason string) {
	t := r.byName[name]
	if t == nil {
		return "", ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, t.reason
}

type receiverMetrics struct {
	sets     *prometheus.CounterVec
	status   *prometheus.GaugeVec
	verified *prometheus.GaugeVec
}

func newReceiverMetrics(reg prometheus.Registerer) *receiverMetrics {
	m := &receiverMetrics{
		sets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ssf_sets_total",
			Help: "SETs received, by transmitter and outcome (applied, ignored, stream, rejected, unavailable).",
		}, []string{"transmitter", "outcome"}),
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_ssf_stream_status",
			Help: "Last stream status announced by a transmitter (stream-updated): 1 for the current status.",
		}, []string{"transmitter", "status"}),
		verified: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_ssf_stream_verified_timestamp_seconds",
			Help: "When a transmitter's last SSF verification event was received.",
		}, []string{"transmitter"}),
	}
	if reg != nil {
		reg.MustRegister(m.sets, m.status, m.verified)
	}
	return m
}
