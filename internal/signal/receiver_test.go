package signal_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/signal"
	"github.com/vigil-authz/vigil/internal/signal/ssftest"
	"github.com/vigil-authz/vigil/internal/state"
)

const (
	audience = "https://vigil.test"
	pushAuth = "Bearer push-secret"
)

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

type env struct {
	tx    *ssftest.Transmitter
	store *state.Store
	rcv   *signal.Receiver
	url   string
}

func openStore(t testing.TB) *state.Store {
	t.Helper()
	cfg := state.Config{DataDir: t.TempDir()}
	cfg.SetDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := state.Open(ctx, cfg, logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// newEnv starts a transmitter, a store in t.TempDir(), a receiver and an
// HTTP server for its push endpoint. pub replaces the store as publisher
// when not nil.
func newEnv(t testing.TB, mutate func(tc *signal.TransmitterConfig), pub signal.Publisher) *env {
	t.Helper()
	e := &env{tx: ssftest.New(t, audience), store: openStore(t)}
	tc := signal.TransmitterConfig{
		Name: "test-tx", Issuer: e.tx.Issuer, ConfigurationURL: e.tx.ConfigurationURL(),
		Audience: audience, Push: &signal.PushConfig{Authorization: pushAuth},
	}
	if mutate != nil {
		mutate(&tc)
	}
	cfg := signal.Config{Transmitters: []signal.TransmitterConfig{tc}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if pub == nil {
		pub = e.store
	}
	e.rcv = signal.New(cfg, pub, logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.rcv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "receiver ready", e.rcv.Ready)
	srv := httptest.NewServer(e.rcv)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func user(sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": "https://idp.example", "sub": sub}
}

func revoked(st *state.Store, sub string) bool {
	f := st.Current().Facts(state.Query{Issuer: "https://idp.example", Subject: sub})
	deny, _, _ := f.Guard(time.Now().Add(-time.Hour))
	return deny
}

func (e *env) push(t testing.TB, set, auth string) (int, string) {
	t.Helper()
	status, body, err := e.tx.Push(context.Background(), e.url, auth, set)
	if err != nil {
		t.Fatal(err)
	}
	return status, string(body)
}

func errCode(body string) string {
	var b struct {
		Err string `json:"err"`
	}
	_ = json.Unmarshal([]byte(body), &b)
	return b.Err
}

func TestPushAppliesASignalBeforeAnswering(t *testing.T) {
	e := newEnv(t, nil, nil)
	set := e.tx.Sign(ssftest.Event{Type: ssftest.SessionRevoked, SubID: user("alice"),
		Payload: map[string]any{"reason_admin": map[string]string{"en": "risk"}}})
	status, body := e.push(t, set, pushAuth)
	if status != http.StatusAccepted || body != "" {
		t.Fatalf("push = %d %q, want 202 with empty body", status, body)
	}
	if !revoked(e.store, "alice") {
		t.Fatal("202 answered but the revocation is not in force")
	}
	f := e.store.Current().Facts(state.Query{Issuer: "https://idp.example", Subject: "alice"})
	if !strings.Contains(f.RevokedReason, "risk") {
		t.Fatalf("reason = %q", f.RevokedReason)
	}
}

func TestPushRejectsBadSETs(t *testing.T) {
	e := newEnv(t, nil, nil)
	ev := func() ssftest.Event { return ssftest.Event{Type: ssftest.SessionRevoked, SubID: user("bob")} }
	hdr := func(mod map[string]any) map[string]any {
		h := map[string]any{"alg": "RS256", "typ": "secevent+jwt", "kid": e.tx.KeyID}
		for k, v := range mod {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	withClaims := func(mod map[string]any) string {
		ev := ev()
		ev.Extra = mod
		return e.tx.SignRaw(hdr(nil), e.tx.Claims(ev))
	}
	tests := []struct {
		name   string
		set    string
		status int
		code   string
	}{
		{"alg none", e.tx.SignRaw(hdr(map[string]any{"alg": "none"}), e.tx.Claims(ev())), 400, "invalid_request"},
		{"an algorithm outside the allowlist", e.tx.SignRaw(hdr(map[string]any{"alg": "HS256"}), e.tx.Claims(ev())), 400, "invalid_request"},
		{"typ JWT", e.tx.SignRaw(hdr(map[string]any{"typ": "JWT"}), e.tx.Claims(ev())), 400, "invalid_request"},
		{"no typ", e.tx.SignRaw(hdr(map[string]any{"typ": nil}), e.tx.Claims(ev())), 400, "invalid_request"},
		{"an unknown issuer", withClaims(map[string]any{"iss": "https://evil.example"}), 400, "invalid_issuer"},
		{"a wrong audience", withClaims(map[string]any{"aud": "https://other.example"}), 400, "invalid_audience"},
		{"an unknown kid", e.tx.SignRaw(hdr(map[string]any{"kid": "nope"}), e.tx.Claims(ev())), 400, "invalid_key"},
		{"a tampered payload", tamper(e.tx.Sign(ev())), 400, "invalid_key"},
		{"a forbidden sub claim", withClaims(map[string]any{"sub": "bob"}), 400, "invalid_request"},
		{"a forbidden exp claim", withClaims(map[string]any{"exp": time.Now().Add(time.Hour).Unix()}), 400, "invalid_request"},
		{"no iat", withClaims(map[string]any{"iat": nil}), 400, "invalid_request"},
		{"no jti", withClaims(map[string]any{"jti": nil}), 400, "invalid_request"},
		{"two events", withClaims(map[string]any{"events": map[string]any{ssftest.SessionRevoked: map[string]any{}, ssftest.AccountDisabled: map[string]any{}}}), 400, "invalid_request"},
		{"a malformed sub_id", withClaims(map[string]any{"sub_id": map[string]any{"format": "iss_sub", "iss": "x"}}), 400, "invalid_request"},
		{"no sub_id", withClaims(map[string]any{"sub_id": nil}), 400, "invalid_request"},
		{"a malformed credential-change", e.tx.Sign(ssftest.Event{Type: ssftest.CredentialChange, SubID: user("bob"), Payload: map[string]any{"credential_type": "password", "change_type": "shred"}}), 400, "invalid_request"},
		{"garbage", "not.a.jws", 400, "invalid_request"},
		{"an oversized body", strings.Repeat("a", signal.MaxSETSize+1), 413, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run("a SET with "+tt.name+" is rejected", func(t *testing.T) {
			status, body := e.push(t, tt.set, pushAuth)
			if status != tt.status || errCode(body) != tt.code {
				t.Fatalf("push = %d %s, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
	if revoked(e.store, "bob") || e.store.Seq() != 0 {
		t.Fatalf("a rejected SET was applied (seq %d)", e.store.Seq())
	}
}

func tamper(set string) string {
	parts := strings.Split(set, ".")
	c, _ := base64.RawURLEncoding.DecodeString(parts[1])
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(c), `"bob"`, `"eve"`, 1)))
	return strings.Join(parts, ".")
}

func TestPushHTTPErrors(t *testing.T) {
	e := newEnv(t, nil, nil)
	set := e.tx.Sign(ssftest.Event{Type: ssftest.SessionRevoked, SubID: user("carol")})
	t.Run("a missing Authorization header is 401", func(t *testing.T) {
		if status, _ := e.push(t, set, ""); status != http.StatusUnauthorized {
			t.Fatalf("status %d", status)
		}
	})
	t.Run("a wrong Authorization header is 403", func(t *testing.T) {
		if status, _ := e.push(t, set, "Bearer guess"); status != http.StatusForbidden {
			t.Fatalf("status %d", status)
		}
	})
	t.Run("GET is 405", func(t *testing.T) {
		resp, err := http.Get(e.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("a JSON body is 415", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.url, strings.NewReader(set))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", pushAuth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	if revoked(e.store, "carol") {
		t.Fatal("an unauthenticated push was applied")
	}
}

func TestPushIsIdempotentAndIgnoresUnknownEvents(t *testing.T) {
	e := newEnv(t, nil, nil)
	set := e.tx.Sign(ssftest.Event{Type: ssftest.AccountDisabled, SubID: user("dave"), JTI: "same"})
	for i := range 2 {
		if status, body := e.push(t, set, pushAuth); status != http.StatusAccepted {
			t.Fatalf("push %d = %d %s", i, status, body)
		}
	}
	if e.store.Seq() != 1 {
		t.Fatalf("replayed jti journalled twice: seq %d", e.store.Seq())
	}
	for _, ev := range []ssftest.Event{
		{Type: "https://example.com/custom-event", SubID: user("dave")},
		{Type: "https://schemas.openid.net/secevent/caep/event-type/session-established", SubID: user("dave")},
		{Type: ssftest.CredentialChange, SubID: user("dave"), Payload: map[string]any{"credential_type": "fido2-roaming", "change_type": "create"}},
	} {
		if status, body := e.push(t, e.tx.Sign(ev), pushAuth); status != http.StatusAccepted {
			t.Fatalf("%s: push = %d %s", ev.Type, status, body)
		}
	}
	if e.store.Seq() != 1 {
		t.Fatalf("ignored events were journalled: seq %d", e.store.Seq())
	}
}

func TestStreamEvents(t *testing.T) {
	e := newEnv(t, nil, nil)
	stream := map[string]any{"format": "opaque", "id": "stream-1"}
	if err := e.rcv.ExpectVerification("test-tx", "s-123"); err != nil {
		t.Fatal(err)
	}
	bad := e.tx.Sign(ssftest.Event{Type: ssftest.Verification, SubID: stream, Payload: map[string]any{"state": "forged"}})
	if status, body := e.push(t, bad, pushAuth); status != 400 || errCode(body) != "invalid_state" {
		t.Fatalf("mismatched state: %d %s", status, body)
	}
	good := e.tx.Sign(ssftest.Event{Type: ssftest.Verification, SubID: stream, Payload: map[string]any{"state": "s-123"}})
	if status, body := e.push(t, good, pushAuth); status != 202 {
		t.Fatalf("matching state: %d %s", status, body)
	}
	upd := e.tx.Sign(ssftest.Event{Type: ssftest.StreamUpdated, SubID: stream, Payload: map[string]any{"status": "paused", "reason": "maintenance"}})
	if status, body := e.push(t, upd, pushAuth); status != 202 {
		t.Fatalf("stream-updated: %d %s", status, body)
	}
	if st, reason := e.rcv.StreamStatus("test-tx"); st != "paused" || reason != "maintenance" {
		t.Fatalf("status = %q %q", st, reason)
	}
	if e.store.Seq() != 0 {
		t.Fatal("stream events were journalled")
	}
}

// failingPublisher fails while fail is set, then publishes to the store.
type failingPublisher struct {
	store *state.Store
	fail  atomic.Bool
	calls atomic.Int64
}

func (f *failingPublisher) Publish(ctx context.Context, sig state.Signal) (uint64, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return 0, fmt.Errorf("%w: test outage", state.ErrUnavailable)
	}
	return f.store.Publish(ctx, sig)
}

func TestPushAnswers503WhenTheJournalIsUnavailable(t *testing.T) {
	fp := &failingPublisher{}
	e := newEnv(t, nil, fp)
	fp.store = e.store
	fp.fail.Store(true)
	set := e.tx.Sign(ssftest.Event{Type: ssftest.SessionRevoked, SubID: user("erin")})
	if status, _ := e.push(t, set, pushAuth); status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", status)
	}
	fp.fail.Store(false)
	if status, _ := e.push(t, set, pushAuth); status != http.StatusAccepted {
		t.Fatalf("retry: status %d", status)
	}
	if !revoked(e.store, "erin") {
		t.Fatal("retried SET not applied")
	}
}

func TestPollEndToEnd(t *testing.T) {
	tx := ssftest.New(t, audience)
	store := openStore(t)
	fp := &failingPublisher{store: store}
	fp.fail.Store(true)
	cfg := signal.Config{Transmitters: []signal.TransmitterConfig{{
		Name: "poller", Issuer: tx.Issuer, JWKSURI: tx.JWKSURI(), Audience: audience,
		Poll: &signal.PollConfig{Endpoint: tx.PollURL(), Token: tx.PollToken, Interval: 10 * time.Millisecond},
	}}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	good := tx.Sign(ssftest.Event{Type: ssftest.SessionRevoked, SubID: user("frank"), JTI: "good"})
	tx.Enqueue("good", good)
	tx.Enqueue("bad-aud", tx.Sign(ssftest.Event{Type: ssftest.SessionRevoked, SubID: user("frank"), JTI: "bad-aud", Extra: map[string]any{"aud": "x"}}))
	tx.Enqueue("unknown", tx.Sign(ssftest.Event{Type: "https://example.com/unknown", SubID: user("frank"), JTI: "unknown"}))

	rcv := signal.New(cfg, fp, logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rcv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// While the journal is down, nothing that needs it is acknowledged.
	waitFor(t, "publish attempts", func() bool { return fp.calls.Load() >= 2 })
	if slices.Contains(tx.Acked(), "good") {
		t.Fatal("SET acknowledged although Publish failed")
	}
	fp.fail.Store(false)
	waitFor(t, "acknowledgements", func() bool {
		a := tx.Acked()
		return slices.Contains(a, "good") && slices.Contains(a, "unknown") && tx.Pending() == 0
	})
	if !revoked(store, "frank") {
		t.Fatal("polled SET not in force")
	}
	if e := tx.SetErrs()["bad-aud"]; e.Err != "invalid_audience" {
		t.Fatalf("setErrs = %+v", tx.SetErrs())
	}
}

func TestConfigValidate(t *testing.T) {
	ok := signal.TransmitterConfig{Name: "a", Issuer: "https://i", JWKSURI: "https://i/jwks", Audience: "aud", Push: &signal.PushConfig{}}
	tests := []struct {
		name string
		mod  func(*signal.TransmitterConfig)
		want string
	}{
		{"a name is required", func(c *signal.TransmitterConfig) { c.Name = "" }, "transmitters[0].name"},
		{"an issuer is required", func(c *signal.TransmitterConfig) { c.Issuer = "" }, "transmitters[0].issuer"},
		{"keys must come from somewhere", func(c *signal.TransmitterConfig) { c.JWKSURI = "" }, "transmitters[0].jwks_uri"},
		{"plain http is refused off loopback", func(c *signal.TransmitterConfig) { c.JWKSURI = "http://idp.example/jwks" }, "https"},
		{"an audience is required", func(c *signal.TransmitterConfig) { c.Audience = "" }, "audience"},
		{"none is not an algorithm", func(c *signal.TransmitterConfig) { c.Algorithms = []string{"none"} }, "algorithms"},
		{"HS256 is not allowed", func(c *signal.TransmitterConfig) { c.Algorithms = []string{"HS256"} }, "algorithms[0]"},
		{"a delivery method is required", func(c *signal.TransmitterConfig) { c.Push = nil }, "push"},
		{"poll needs an endpoint", func(c *signal.TransmitterConfig) { c.Poll = &signal.PollConfig{} }, "poll.endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := ok
			tt.mod(&tc)
			cfg := signal.Config{Transmitters: []signal.TransmitterConfig{tc}}
			cfg.SetDefaults()
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			}
		})
	}
	cfg := signal.Config{Transmitters: []signal.TransmitterConfig{ok}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestKeyRotationAndLegacySubjects(t *testing.T) {
	e := newEnv(t, nil, nil)
	t.Run("a SET signed with a newly published key is accepted after one JWKS refresh", func(t *testing.T) {
		e.tx.AddKey("k2")
		set := e.tx.Sign(ssftest.Event{Type: ssftest.SessionRevoked, SubID: user("gina")})
		if status, body := e.push(t, set, pushAuth); status != 202 {
			t.Fatalf("push = %d %s", status, body)
		}
		if !revoked(e.store, "gina") {
			t.Fatal("not applied")
		}
	})
	t.Run("a legacy subject inside the event is accepted without sub_id", func(t *testing.T) {
		set := e.tx.Sign(ssftest.Event{Type: ssftest.AccountDisabled, Payload: map[string]any{"subject": map[string]any{"subject_type": "iss-sub", "iss": "https://idp.example", "sub": "hank"}}})
		if status, body := e.push(t, set, pushAuth); status != 202 {
			t.Fatalf("push = %d %s", status, body)
		}
		if !revoked(e.store, "hank") {
			t.Fatal("not applied")
		}
	})
}

// BenchmarkPushToFacts measures the time from a push POST to Facts
// reflecting it. The receiver answers 202 only after Publish returned, so
// the signal is in force when the response arrives; the benchmark checks
// that and reports the latency distribution.
func BenchmarkPushToFacts(b *testing.B) {
	e := newEnv(b, nil, nil)
	ctx := context.Background()
	const n = 1000
	sets := make([]string, n)
	var lat []time.Duration
	round := 0
	for b.Loop() {
		round++
		for i := range sets { // fresh jtis: no duplicates
			sets[i] = e.tx.Sign(ssftest.Event{Type: ssftest.SessionRevoked, SubID: user(fmt.Sprintf("bench-%d-%d", round, i))})
		}
		for i := range n {
			start := time.Now()
			status, body, err := e.tx.Push(ctx, e.url, pushAuth, sets[i])
			if err != nil || status != http.StatusAccepted {
				b.Fatalf("push %d: %d %s %v", i, status, body, err)
			}
			if !revoked(e.store, fmt.Sprintf("bench-%d-%d", round, i)) {
				b.Fatalf("signal %d not in force after 202", i)
			}
			lat = append(lat, time.Since(start))
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(n), "signals/op")
}
