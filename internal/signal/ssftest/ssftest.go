// Package ssftest is a real SSF transmitter for tests: an httptest server
// with a generated RSA key, a JWKS, /.well-known/ssf-configuration and an
// RFC 8936 poll endpoint with acknowledgement semantics. It signs SETs and
// pushes them (RFC 8935) to a receiver.
package ssftest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Event URIs used most in tests.
const (
	SessionRevoked   = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	CredentialChange = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	AccountDisabled  = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
	AccountEnabled   = "https://schemas.openid.net/secevent/risc/event-type/account-enabled"
	Verification     = "https://schemas.openid.net/secevent/ssf/event-type/verification"
	StreamUpdated    = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated"
)

// Paths served.
const (
	ConfigurationPath = "/.well-known/ssf-configuration"
	JWKSPath          = "/jwks.json"
	PollPath          = "/poll"
)

// Event is a SET to sign. Zero fields get defaults: JTI random, IssuedAt
// now, Payload {}.
type Event struct {
	Type     string
	SubID    any // sub_id: a map or struct; nil omits it
	Payload  map[string]any
	JTI      string
	IssuedAt time.Time
	// Extra claims merged into the SET (they may override defaults).
	Extra map[string]any
}

// PollError is a setErrs entry the receiver reported.
type PollError struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// Transmitter is a running test transmitter.
type Transmitter struct {
	Server    *httptest.Server
	Issuer    string
	Audience  string
	PollToken string
	KeyID     string
	Key       *rsa.PrivateKey

	mu       sync.Mutex
	keys     map[string]*rsa.PublicKey
	pending  map[string]string
	order    []string
	acked    []string
	setErrs  map[string]PollError
	polls    int
	enqueued chan struct{}
}

// New starts a transmitter whose SETs are addressed to audience. It stops
// when the test ends.
func New(tb testing.TB, audience string) *Transmitter {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("ssftest: generate key: %v", err)
	}
	t := &Transmitter{
		Audience:  audience,
		PollToken: "poll-token-" + randomID(),
		KeyID:     "k1",
		Key:       key,
		keys:      map[string]*rsa.PublicKey{"k1": &key.PublicKey},
		pending:   map[string]string{},
		setErrs:   map[string]PollError{},
		enqueued:  make(chan struct{}, 1),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ConfigurationPath, t.serveConfiguration)
	mux.HandleFunc("GET "+JWKSPath, t.serveJWKS)
	mux.HandleFunc("POST "+PollPath, t.servePoll)
	t.Server = httptest.NewServer(mux)
	t.Issuer = t.Server.URL
	tb.Cleanup(t.Server.Close)
	return t
}

// ConfigurationURL is the transmitter's SSF configuration URL.
func (t *Transmitter) ConfigurationURL() string { return t.Server.URL + ConfigurationPath }

// JWKSURI is the transmitter's JWKS URL.
func (t *Transmitter) JWKSURI() string { return t.Server.URL + JWKSPath }

// PollURL is the transmitter's poll endpoint.
func (t *Transmitter) PollURL() string { return t.Server.URL + PollPath }

func (t *Transmitter) serveConfiguration(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{
		"spec_version":               "1_0",
		"issuer":                     t.Issuer,
		"jwks_uri":                   t.JWKSURI(),
		"delivery_methods_supported": []string{"urn:ietf:rfc:8935", "urn:ietf:rfc:8936"},
		"configuration_endpoint":     t.Server.URL + "/streams",
		"status_endpoint":            t.Server.URL + "/status",
		"verification_endpoint":      t.Server.URL + "/verify",
		"authorization_schemes":      []map[string]string{{"spec_urn": "urn:ietf:rfc:6749"}},
	})
}

func (t *Transmitter) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := []map[string]string{}
	for kid, pub := range t.keys {
		keys = append(keys, map[string]string{
			"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	writeJSON(w, map[string]any{"keys": keys})
}

// AddKey generates a new signing key, publishes it in the JWKS under kid
// and makes it the key Sign uses.
func (t *Transmitter) AddKey(kid string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.keys[kid] = &key.PublicKey
	t.Key, t.KeyID = key, kid
}

// Claims returns the SET claims for ev.
func (t *Transmitter) Claims(ev Event) map[string]any {
	if ev.JTI == "" {
		ev.JTI = randomID()
	}
	if ev.IssuedAt.IsZero() {
		ev.IssuedAt = time.Now()
	}
	if ev.Payload == nil {
		ev.Payload = map[string]any{}
	}
	c := map[string]any{
		"iss":    t.Issuer,
		"jti":    ev.JTI,
		"iat":    ev.IssuedAt.Unix(),
		"aud":    t.Audience,
		"events": map[string]any{ev.Type: ev.Payload},
	}
	if ev.SubID != nil {
		c["sub_id"] = ev.SubID
	}
	for k, v := range ev.Extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Sign returns ev as a compact SET signed RS256 with typ secevent+jwt.
func (t *Transmitter) Sign(ev Event) string {
	t.mu.Lock()
	kid := t.KeyID
	t.mu.Unlock()
	return t.SignRaw(map[string]any{"alg": "RS256", "typ": "secevent+jwt", "kid": kid}, t.Claims(ev))
}

// SignRaw signs arbitrary header and claims with the current key. With
// "alg":"none" the signature is empty. Any other alg is signed RS256
// regardless (so that tests can send a mislabelled algorithm).
func (t *Transmitter) SignRaw(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	if header["alg"] == "none" {
		return input + "."
	}
	t.mu.Lock()
	key := t.Key
	t.mu.Unlock()
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return input + "." + b64(sig)
}

// Push POSTs a SET to url as RFC 8935 does, with the Authorization header
// if authorization is not empty. It returns the status and body.
func (t *Transmitter) Push(ctx context.Context, url, authorization, set string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(set)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// Enqueue makes a SET available on the poll endpoint under its jti.
func (t *Transmitter) Enqueue(jti, set string) {
	t.mu.Lock()
	if _, ok := t.pending[jti]; !ok {
		t.order = append(t.order, jti)
	}
	t.pending[jti] = set
	t.mu.Unlock()
	select {
	case t.enqueued <- struct{}{}:
	default:
	}
}

// Acked returns the jtis the receiver acknowledged, in order.
func (t *Transmitter) Acked() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.acked...)
}

// SetErrs returns the errors the receiver reported, by jti.
func (t *Transmitter) SetErrs() map[string]PollError {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]PollError, len(t.setErrs))
	for k, v := range t.setErrs {
		out[k] = v
	}
	return out
}

// Pending returns how many SETs await acknowledgement.
func (t *Transmitter) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Polls returns how many poll requests were served.
func (t *Transmitter) Polls() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.polls
}

func (t *Transmitter) servePoll(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+t.PollToken {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var req struct {
		MaxEvents         *int                 `json:"maxEvents"`
		ReturnImmediately bool                 `json:"returnImmediately"`
		Ack               []string             `json:"ack"`
		SetErrs           map[string]PollError `json:"setErrs"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	t.mu.Lock()
	t.polls++
	for _, jti := range req.Ack {
		if _, ok := t.pending[jti]; ok {
			delete(t.pending, jti)
			t.acked = append(t.acked, jti)
		}
	}
	for jti, e := range req.SetErrs {
		if _, ok := t.pending[jti]; ok {
			delete(t.pending, jti)
			t.setErrs[jti] = e
		}
	}
	t.mu.Unlock()
	maxEvents := 10
	if req.MaxEvents != nil {
		maxEvents = *req.MaxEvents
	}
	if maxEvents > 0 && !req.ReturnImmediately && t.Pending() == 0 {
		// Long poll, kept short for tests.
		timer := time.NewTimer(500 * time.Millisecond)
		select {
		case <-t.enqueued:
		case <-timer.C:
		case <-r.Context().Done():
		}
		timer.Stop()
	}
	t.mu.Lock()
	sets := map[string]string{}
	for _, jti := range t.order {
		if len(sets) >= maxEvents {
			break
		}
		if set, ok := t.pending[jti]; ok {
			sets[jti] = set
		}
	}
	more := len(t.pending) > len(sets)
	kept := t.order[:0]
	for _, jti := range t.order {
		if _, ok := t.pending[jti]; ok {
			kept = append(kept, jti)
		}
	}
	t.order = kept
	t.mu.Unlock()
	writeJSON(w, map[string]any{"sets": sets, "moreAvailable": more})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}
