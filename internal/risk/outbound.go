package risk

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/prometheus/client_golang/prometheus"
)

// SETType is the JWS "typ" of Security Event Tokens (RFC 8417).
const SETType = "secevent+jwt"

// TransmitterOptions are the dependencies of a Transmitter.
type TransmitterOptions struct {
	// Config is the outbound configuration (defaults applied, validated).
	Config Outbound
	// Key signs the SETs; it must fit Config.Algorithm.
	Key crypto.Signer
	// Client posts SETs; default: no redirects, Config.Timeout per attempt.
	Client *http.Client
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// Registerer, when set, gets the transmitter's metrics.
	Registerer prometheus.Registerer
	// Now is the clock of iat (default time.Now).
	Now func() time.Time
}

// Transmitter sends risk level changes as signed CAEP risk-level-change
// Security Event Tokens to the configured receivers by RFC 8935 push. Each
// receiver has a bounded queue and one delivery goroutine: SETs reach it
// in order, failed deliveries are retried with exponential backoff, and a
// full queue drops (and counts) new SETs rather than blocking the engine.
//
// Lifecycle: NewTransmitter builds; Run delivers until its context is
// cancelled. Notify may be called at any time.
type Transmitter struct {
	cfg     Outbound
	key     crypto.Signer
	alg     jwa.SignatureAlgorithm
	kid     string
	jwks    []byte
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
	rcv     []*receiver
	running atomic.Bool
}

type receiver struct {
	cfg      Receiver
	aud      string
	q        chan Change
	outcomes *prometheus.CounterVec
}

// NewTransmitter builds a transmitter. It fails when the key does not fit
// the algorithm.
func NewTransmitter(o TransmitterOptions) (*Transmitter, error) {
	if o.Key == nil {
		return nil, errors.New("risk outbound: a signing key is required")
	}
	cfg := o.Config
	if errs := cfg.validate(); len(errs) > 0 {
		return nil, fmt.Errorf("risk config: %w", errors.Join(errs...))
	}
	t := &Transmitter{cfg: cfg, key: o.Key, client: o.Client, log: o.Log, now: o.Now}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.client == nil {
		t.client = &http.Client{
			Timeout:       cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	switch cfg.Algorithm {
	case "ES256":
		t.alg = jwa.ES256()
	default:
		t.alg = jwa.RS256()
	}
	if _, err := checkKey(o.Key, cfg.Algorithm); err != nil {
		return nil, fmt.Errorf("risk outbound: signing key: %w", err)
	}
	pub, err := jwk.PublicKeyOf(o.Key)
	if err != nil {
		return nil, fmt.Errorf("risk outbound: public key: %w", err)
	}
	if err := jwk.AssignKeyID(pub); err != nil {
		return nil, fmt.Errorf("risk outbound: key id: %w", err)
	}
	t.kid, _ = pub.KeyID()
	for k, v := range map[string]any{jwk.AlgorithmKey: t.alg, jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			return nil, fmt.Errorf("risk outbound: public key %s: %w", k, err)
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("risk outbound: key set: %w", err)
	}
	if t.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("risk outbound: encode key set: %w", err)
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_risk_outbound_total",
		Help: "Risk SETs sent to receivers, by receiver and result: delivered, rejected (the receiver refused it; not retried), failed (gave up after retries), dropped (queue full), retried (attempts that failed and were retried).",
	}, []string{"receiver", "result"})
	if o.Registerer != nil {
		if err := o.Registerer.Register(outcomes); err != nil {
			return nil, fmt.Errorf("risk outbound: register metrics: %w", err)
		}
	}
	for _, rc := range cfg.Receivers {
		aud := rc.Audience
		if aud == "" {
			u, _ := pushURL(rc.Endpoint) // validated
			aud = u.Scheme + "://" + u.Host
		}
		t.rcv = append(t.rcv, &receiver{cfg: rc, aud: aud, q: make(chan Change, cfg.QueueSize), outcomes: outcomes})
	}
	return t, nil
}

// KeyID returns the kid of the signing key (its JWK thumbprint).
func (t *Transmitter) KeyID() string { return t.kid }

// JWKS returns the public key set (JSON) receivers verify SETs with.
func (t *Transmitter) JWKS() []byte { return bytes.Clone(t.jwks) }

// JWKSHandler serves the public key set, e.g. at
// /.well-known/vigil-risk-jwks.json.
func (t *Transmitter) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(t.jwks)
	})
}

// Notify queues a change for every receiver without blocking; a receiver
// whose queue is full loses it (counted as dropped).
func (t *Transmitter) Notify(c Change) {
	for _, r := range t.rcv {
		select {
		case r.q <- c:
		default:
			r.outcomes.WithLabelValues(r.cfg.Name, "dropped").Inc()
			t.log.Warn("risk SET dropped: receiver queue full", "receiver", r.cfg.Name, "subject", c.Subject, "level", c.Level)
		}
	}
}

// Run delivers queued SETs until ctx is cancelled.
func (t *Transmitter) Run(ctx context.Context) error {
	if !t.running.CompareAndSwap(false, true) {
		return errors.New("risk outbound: already running")
	}
	defer t.running.Store(false)
	var wg sync.WaitGroup
	for _, r := range t.rcv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case c := <-r.q:
					t.deliver(ctx, r, c)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// deliver sends one change to one receiver, retrying transient failures.
func (t *Transmitter) deliver(ctx context.Context, r *receiver, c Change) {
	set, err := t.sign(c, r.aud)
	if err != nil {
		r.outcomes.WithLabelValues(r.cfg.Name, "failed").Inc()
		t.log.Error("risk SET not signed", "receiver", r.cfg.Name, "err", err)
		return
	}
	log := t.log.With("receiver", r.cfg.Name, "subject", c.Subject, "session", c.SessionID, "level", c.Level)
	backoff := t.cfg.InitialBackoff
	for attempt := 1; ; attempt++ {
		wait, err := t.post(ctx, r, set)
		if err == nil {
			r.outcomes.WithLabelValues(r.cfg.Name, "delivered").Inc()
			log.Debug("risk SET delivered", "attempt", attempt)
			return
		}
		var perm permanentError
		if errors.As(err, &perm) {
			r.outcomes.WithLabelValues(r.cfg.Name, "rejected").Inc()
			log.Warn("risk SET rejected by receiver", "err", err)
			return
		}
		if attempt >= t.cfg.MaxAttempts || ctx.Err() != nil {
			r.outcomes.WithLabelValues(r.cfg.Name, "failed").Inc()
			log.Warn("risk SET not delivered", "attempts", attempt, "err", err)
			return
		}
		r.outcomes.WithLabelValues(r.cfg.Name, "retried").Inc()
		if wait <= 0 {
			// Full jitter keeps receivers from seeing synchronized retries.
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, t.cfg.MaxBackoff)
		}
		log.Debug("risk SET delivery failed; retrying", "attempt", attempt, "in", wait, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			r.outcomes.WithLabelValues(r.cfg.Name, "failed").Inc()
			return
		case <-timer.C:
		}
	}
}

// permanentError is a refusal retrying cannot cure.
type permanentError struct{ msg string }

func (e permanentError) Error() string { return e.msg }

// maxErrBody bounds how much of an error answer is read.
const maxErrBody = 4 << 10

// post makes one delivery attempt (RFC 8935 §2). It returns how long the
// receiver asked to wait (Retry-After) with a transient error.
func (t *Transmitter) post(ctx context.Context, r *receiver, set string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.Endpoint, strings.NewReader(set))
	if err != nil {
		return 0, permanentError{fmt.Sprintf("build request: %v", err)}
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	if r.cfg.AuthorizationHeader != "" {
		req.Header.Set("Authorization", r.cfg.AuthorizationHeader)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post to %s: %w", r.cfg.Endpoint, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrBody))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return retryAfter(resp.Header.Get("Retry-After"), t.cfg.MaxBackoff), fmt.Errorf("receiver answered %d", resp.StatusCode)
	case resp.StatusCode == http.StatusBadRequest:
		var e struct {
			Err         string `json:"err"`
			Description string `json:"description"`
		}
		_ = json.Unmarshal(body, &e)
		return 0, permanentError{fmt.Sprintf("receiver answered 400: err=%q description=%q", truncate(e.Err, 64), truncate(e.Description, 256))}
	}
	return 0, permanentError{fmt.Sprintf("receiver answered %d", resp.StatusCode)}
}

// retryAfter reads a Retry-After in seconds, capped; 0 when absent.
func retryAfter(v string, limit time.Duration) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, limit)
}

// sign builds and signs the SET of a change for one audience (SSF 1.0 /
// CAEP 1.0: typ secevent+jwt, iss, aud, iat, jti, txn, sub_id, one event).
func (t *Transmitter) sign(c Change, aud string) (string, error) {
	user := map[string]any{"format": "iss_sub", "iss": c.Issuer, "sub": c.Subject}
	if c.Issuer == "" {
		user = map[string]any{"format": "opaque", "id": c.Subject}
	}
	subID := user
	if c.Principal == PrincipalSession {
		subID = map[string]any{
			"format":  "complex",
			"user":    user,
			"session": map[string]any{"format": "opaque", "id": c.SessionID},
		}
	}
	event := map[string]any{
		"principal":         c.Principal,
		"current_level":     c.Level,
		"event_timestamp":   c.Time.Unix(),
		"initiating_entity": "system",
	}
	if c.PreviousLevel != "" {
		event["previous_level"] = c.PreviousLevel
	}
	if len(c.Reasons) > 0 {
		event["risk_reason"] = strings.Join(c.Reasons, "; ")
	}
	claims := map[string]any{
		"iss":    t.cfg.Issuer,
		"aud":    aud,
		"iat":    t.now().Unix(),
		"jti":    newID(),
		"txn":    c.ID,
		"sub_id": subID,
		"events": map[string]any{EventType: event},
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode SET: %w", err)
	}
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{jws.KeyIDKey: t.kid, jws.TypeKey: SETType} {
		if err := hdr.Set(k, v); err != nil {
			return "", fmt.Errorf("SET header %s: %w", k, err)
		}
	}
	tok, err := jws.Sign(payload, jws.WithKey(t.alg, t.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign SET: %w", err)
	}
	return string(tok), nil
}
