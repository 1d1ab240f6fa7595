package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// minRSABits is the smallest RSA modulus accepted from a JWKS (RFC 7518
// §3.3 requires 2048).
const minRSABits = 2048

var (
	errRateLimited = errors.New("key set was fetched less than 10s ago")
	errClosed      = errors.New("verifier is closed")
)

// verifyKey is a public key from an issuer's JWKS, checked to be usable for
// signature verification.
type verifyKey struct {
	kid string
	// alg is the key's "alg" parameter; when set, the key is used with that
	// algorithm only.
	alg string
	// raw is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	raw any
	// thumb is the RFC 7638 SHA-256 thumbprint, identifying the key in the
	// verified-token cache.
	thumb string
}

// compatible reports whether k may verify a signature made with alg: the
// key type and curve must be the ones the algorithm is defined for, so that
// the token header can never choose how a key is used.
func (k *verifyKey) compatible(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.raw.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// keySet is an immutable, indexed JWKS.
type keySet struct {
	keys    []*verifyKey
	byKID   map[string][]*verifyKey
	thumbs  map[string]bool
	uri     string
	fetched time.Time
	expires time.Time
}

// candidates returns the keys that may verify a token with kid and alg. A
// token without kid is tried against every compatible key.
func (s *keySet) candidates(kid, alg string) []*verifyKey {
	if s == nil {
		return nil
	}
	pool := s.keys
	if kid != "" {
		pool = s.byKID[kid]
	}
	var out []*verifyKey
	for _, k := range pool {
		if k.compatible(alg) {
			out = append(out, k)
		}
	}
	return out
}

// parseJWKS parses a JWK Set document. Keys that cannot verify signatures
// (encryption keys, symmetric keys, weak RSA keys, unknown types) are
// skipped, each with a reason; a malformed document is an error.
func parseJWKS(body []byte) (*keySet, []string, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse JWK Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`parse JWK Set: no "keys" array`)
	}
	if len(doc.Keys) > maxJWKSKeys {
		return nil, nil, fmt.Errorf("parse JWK Set: %d keys, at most %d are accepted", len(doc.Keys), maxJWKSKeys)
	}
	set := &keySet{byKID: make(map[string][]*verifyKey), thumbs: make(map[string]bool)}
	var skipped []string
	for i, raw := range doc.Keys {
		k, err := usableKey(raw)
		if err != nil {
			var id struct {
				Kid any `json:"kid"`
			}
			_ = json.Unmarshal(raw, &id)
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %v): %v", i, id.Kid, err))
			continue
		}
		set.keys = append(set.keys, k)
		set.byKID[k.kid] = append(set.byKID[k.kid], k)
		set.thumbs[k.thumb] = true
	}
	return set, skipped, nil
}

func usableKey(raw []byte) (*verifyKey, error) {
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, err
	}
	switch key.KeyType() {
	case jwa.RSA(), jwa.EC(), jwa.OKP():
	default:
		return nil, fmt.Errorf("key type %q cannot verify signatures from a JWKS", key.KeyType().String())
	}
	if use, ok := key.KeyUsage(); ok && use != "sig" {
		return nil, fmt.Errorf("key use is %q, not \"sig\"", use)
	}
	if ops, ok := key.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil, errors.New(`key_ops does not include "verify"`)
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	var rawKey any
	if err := jwk.Export(pub, &rawKey); err != nil {
		return nil, err
	}
	switch p := rawKey.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is below the %d-bit minimum", p.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return nil, fmt.Errorf("unsupported curve %s", p.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("unsupported public key %T", rawKey)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("thumbprint: %w", err)
	}
	vk := &verifyKey{raw: rawKey, thumb: base64.RawURLEncoding.EncodeToString(tp)}
	vk.kid, _ = key.KeyID()
	if alg, ok := key.Algorithm(); ok {
		vk.alg = alg.String()
	}
	return vk, nil
}

// runner owns the package's background goroutines: they run with its
// context and close waits for all of them.
type runner struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newRunner() *runner {
	ctx, cancel := context.WithCancel(context.Background())
	return &runner{ctx: ctx, cancel: cancel}
}

// spawn runs f in a goroutine unless the runner is closed.
func (r *runner) spawn(f func(ctx context.Context)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Go(func() { f(r.ctx) })
	return true
}

func (r *runner) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// keySource keeps one issuer's JWKS: the last good key set, refreshed in the
// background and on demand (rate-limited) when a token names an unknown key.
type keySource struct {
	issuer       string
	discoveryURL string // "" when jwksURI is configured directly
	jwksURI      string
	allowHTTP    bool
	client       httpDoer
	log          *slog.Logger
	now          func() time.Time
	run          *runner

	set atomic.Pointer[keySet]

	mu          sync.Mutex
	call        *fetchCall // in-flight fetch, shared by all waiters
	lastAttempt time.Time
	discovered  string // jwks_uri from the last good discovery document
	lastErr     error
	failures    int // consecutive failed fetches
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// current returns the last good key set, or nil before the first success.
func (ks *keySource) current() *keySet { return ks.set.Load() }

// has reports whether the key with thumbprint thumb is still published.
func (ks *keySource) has(thumb string) bool {
	s := ks.current()
	return s != nil && s.thumbs[thumb]
}

// refetch fetches the key set again because a token named a key that is not
// in it. At most one such fetch starts per jwksRefetchInterval; concurrent
// callers share an in-flight fetch. It returns errRateLimited when no fetch
// was started.
func (ks *keySource) refetch(ctx context.Context) error {
	call, err := ks.start(false)
	if err != nil {
		return err
	}
	return call.wait(ctx)
}

// refresh fetches the key set now, regardless of the rate limit.
func (ks *keySource) refresh(ctx context.Context) error {
	call, err := ks.start(true)
	if err != nil {
		return err
	}
	return call.wait(ctx)
}

func (c *fetchCall) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (ks *keySource) start(force bool) (*fetchCall, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.call != nil {
		return ks.call, nil
	}
	now := ks.now()
	if !force && !ks.lastAttempt.IsZero() && now.Sub(ks.lastAttempt) < jwksRefetchInterval {
		return nil, errRateLimited
	}
	call := &fetchCall{done: make(chan struct{})}
	// The fetch runs detached from the caller, so that one caller giving
	// up does not fail the others, and it is bounded by jwksFetchTimeout.
	if !ks.run.spawn(func(ctx context.Context) {
		err := ks.fetch(ctx)
		ks.mu.Lock()
		call.err = err
		ks.call = nil
		ks.lastErr = err
		if err != nil {
			ks.failures++
		} else {
			ks.failures = 0
		}
		ks.mu.Unlock()
		close(call.done)
	}) {
		return nil, errClosed
	}
	ks.call = call
	ks.lastAttempt = now
	return call, nil
}

// fetch loads discovery (when configured) and the JWKS, and stores the new
// key set. On failure the previous key set stays in use.
func (ks *keySource) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	uri := ks.jwksURI
	if ks.discoveryURL != "" {
		u, err := ks.discover(ctx)
		ks.mu.Lock()
		if err == nil {
			ks.discovered = u
		}
		prev := ks.discovered
		ks.mu.Unlock()
		if err != nil {
			if prev == "" {
				return err
			}
			ks.log.WarnContext(ctx, "identity: discovery failed, using the last known jwks_uri",
				"issuer", ks.issuer, "jwks_uri", prev, "error", err)
		}
		uri = prev
	}
	body, hdr, err := getLimited(ctx, ks.client, uri, "application/jwk-set+json, application/json", maxJWKSBytes)
	if err != nil {
		return fmt.Errorf("fetch JWKS of issuer %q: %w", ks.issuer, err)
	}
	set, skipped, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("JWKS of issuer %q at %s: %w", ks.issuer, uri, err)
	}
	for _, s := range skipped {
		ks.log.DebugContext(ctx, "identity: JWKS key skipped", "issuer", ks.issuer, "jwks_uri", uri, "reason", s)
	}
	if len(set.keys) == 0 {
		ks.log.WarnContext(ctx, "identity: JWKS has no usable signing key; tokens of this issuer will be rejected",
			"issuer", ks.issuer, "jwks_uri", uri, "skipped", len(skipped))
	}
	now := ks.now()
	set.uri = uri
	set.fetched = now
	set.expires = now.Add(cacheMaxAge(hdr.Get("Cache-Control")))
	if prev := ks.set.Swap(set); prev == nil || !sameKeys(prev, set) {
		ks.log.InfoContext(ctx, "identity: JWKS loaded", "issuer", ks.issuer, "jwks_uri", uri,
			"keys", len(set.keys), "refresh_at", set.expires)
	}
	return nil
}

func sameKeys(a, b *keySet) bool {
	if len(a.thumbs) != len(b.thumbs) {
		return false
	}
	for t := range a.thumbs {
		if !b.thumbs[t] {
			return false
		}
	}
	return true
}

// discover reads the discovery document and returns its jwks_uri. The
// document's issuer must equal the configured issuer (OIDC Discovery §4.3).
func (ks *keySource) discover(ctx context.Context) (string, error) {
	body, _, err := getLimited(ctx, ks.client, ks.discoveryURL, "application/json", maxDiscoveryBytes)
	if err != nil {
		return "", fmt.Errorf("discovery for issuer %q: %w", ks.issuer, err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery for issuer %q: parse %s: %w", ks.issuer, ks.discoveryURL, err)
	}
	if doc.Issuer != ks.issuer {
		return "", fmt.Errorf("discovery for issuer %q: document at %s names issuer %q", ks.issuer, ks.discoveryURL, doc.Issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("discovery for issuer %q: document at %s has no jwks_uri", ks.issuer, ks.discoveryURL)
	}
	if err := checkURL(doc.JWKSURI, ks.allowHTTP); err != nil {
		return "", fmt.Errorf("discovery for issuer %q: jwks_uri: %w", ks.issuer, err)
	}
	return doc.JWKSURI, nil
}

// loop refreshes the key set when it expires, and retries with backoff
// after failures, until ctx is cancelled.
func (ks *keySource) loop(ctx context.Context) {
	for {
		timer := time.NewTimer(ks.nextRefresh())
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if err := ks.refresh(ctx); err != nil && ctx.Err() == nil {
			ks.log.WarnContext(ctx, "identity: JWKS refresh failed; keeping the last good key set",
				"issuer", ks.issuer, "error", err)
		}
	}
}

// nextRefresh returns how long to wait before the next background fetch.
func (ks *keySource) nextRefresh() time.Duration {
	ks.mu.Lock()
	failures := ks.failures
	ks.mu.Unlock()
	if failures > 0 {
		d := jwksRetryMin << min(failures-1, 5)
		return min(d, jwksRetryMax)
	}
	s := ks.current()
	if s == nil {
		return jwksRetryMin
	}
	return max(s.expires.Sub(ks.now()), time.Second)
}

// status reports the key source's state.
func (ks *keySource) status() IssuerStatus {
	st := IssuerStatus{Issuer: ks.issuer, JWKSURI: ks.jwksURI}
	ks.mu.Lock()
	if ks.discovered != "" {
		st.JWKSURI = ks.discovered
	}
	if ks.lastErr != nil {
		st.LastError = ks.lastErr.Error()
	}
	ks.mu.Unlock()
	if s := ks.current(); s != nil {
		st.Loaded = true
		st.Keys = len(s.keys)
		st.FetchedAt = s.fetched
		st.RefreshAt = s.expires
		st.JWKSURI = s.uri
	}
	return st
}
