package identity

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Verifier verifies access tokens against the configured issuers. It is
// safe for concurrent use.
type Verifier struct {
	issuers    map[string]*issuer
	ordered    []*issuer
	introspect *issuer // the one issuer that introspects opaque tokens, or nil
	maxBytes   int     // the largest max_token_bytes of all issuers
	cache      *lru[cachedToken]
	icache     *lru[*Token]
	opaque     opaqueFlight
	log        *slog.Logger
	now        func() time.Time
	run        *runner
	startOnce  sync.Once
}

// cachedToken is a verified JWT with the key that verified it, so that a
// key withdrawn from the issuer's JWKS also withdraws the cached tokens it
// signed: the cache never accepts what a fresh verification would reject.
type cachedToken struct {
	tok   *Token
	keys  *keySource // nil for HMAC-signed tokens
	thumb string
}

// issuer is one trusted issuer, ready for verification.
type issuer struct {
	name      string
	algs      map[string]jwa.SignatureAlgorithm
	hmacKey   []byte
	keys      *keySource    // nil without discovery or jwks_uri
	in        *introspector // nil without introspection
	cacheTTL  time.Duration
	tokenType string // normalized; "" means the default rule
	maxBytes  int
	rules     claimRules
}

// IssuerStatus describes the key set of one issuer, for readiness checks
// and the admin API.
type IssuerStatus struct {
	Issuer    string
	JWKSURI   string
	Loaded    bool // a key set has been fetched at least once
	Keys      int
	FetchedAt time.Time
	RefreshAt time.Time
	LastError string // the last fetch error; empty after a success
}

// NewVerifier builds a Verifier for cfg (defaults are applied to a copy and
// it is validated). client is used for discovery, JWKS and introspection
// requests (nil: a client with a 30s timeout); logger may be nil; now is the
// clock used for token times and cache expiry (nil: time.Now). It performs
// no I/O.
func NewVerifier(cfg Config, client *http.Client, logger *slog.Logger, now func() time.Time) (*Verifier, error) {
	cfg.Issuers = cloneIssuers(cfg.Issuers)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("identity configuration: %w", err)
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		issuers: make(map[string]*issuer, len(cfg.Issuers)),
		cache:   newLRU[cachedToken](cfg.CacheSize),
		icache:  newLRU[*Token](cfg.CacheSize),
		opaque:  opaqueFlight{calls: make(map[[32]byte]*opaqueCall)},
		log:     logger,
		now:     now,
		run:     newRunner(),
	}
	for _, ic := range cfg.Issuers {
		is := &issuer{
			name:      ic.Issuer,
			algs:      make(map[string]jwa.SignatureAlgorithm, len(ic.Algorithms)),
			tokenType: normalizeType(ic.TokenType),
			maxBytes:  ic.MaxTokenBytes,
			rules: claimRules{
				issuer:         ic.Issuer,
				audiences:      append([]string(nil), ic.Audiences...),
				leeway:         ic.Leeway,
				rolesClaim:     ic.RolesClaim,
				principalType:  ic.PrincipalType,
				roleType:       ic.RoleType,
				requireRFC9068: normalizeType(ic.TokenType) == "at+jwt",
			},
		}
		for _, name := range ic.Algorithms {
			alg, ok := jwa.LookupSignatureAlgorithm(name)
			if !ok {
				return nil, fmt.Errorf("identity configuration: issuer %q: algorithm %q is not available", ic.Issuer, name)
			}
			is.algs[name] = alg
		}
		if ic.HMACSecret != "" {
			is.hmacKey = []byte(ic.HMACSecret)
		}
		if doc := ic.Discovery.DocumentURL(ic.Issuer); doc != "" || ic.JWKSURI != "" {
			is.keys = &keySource{
				issuer:       ic.Issuer,
				discoveryURL: doc,
				jwksURI:      ic.JWKSURI,
				allowHTTP:    ic.AllowHTTP,
				client:       client,
				log:          logger,
				now:          now,
				run:          v.run,
			}
		}
		if in := ic.Introspection; in != nil {
			is.in = &introspector{issuer: ic.Issuer, cfg: *in, client: client}
			is.cacheTTL = in.CacheTTL
			v.introspect = is
		}
		v.maxBytes = max(v.maxBytes, ic.MaxTokenBytes)
		v.issuers[ic.Issuer] = is
		v.ordered = append(v.ordered, is)
	}
	if v.maxBytes == 0 {
		v.maxBytes = DefaultMaxTokenBytes
	}
	return v, nil
}

func cloneIssuers(in []IssuerConfig) []IssuerConfig {
	out := make([]IssuerConfig, len(in))
	for i, ic := range in {
		ic.Audiences = append([]string(nil), ic.Audiences...)
		ic.Algorithms = append([]string(nil), ic.Algorithms...)
		if ic.Introspection != nil {
			cp := *ic.Introspection
			ic.Introspection = &cp
		}
		out[i] = ic
	}
	return out
}

// Start fetches the key set of every issuer concurrently, waiting until
// each fetch has finished or ctx is done, then keeps the key sets fresh in
// the background until Close. Fetch failures are logged and retried; they
// are not fatal. Calls after the first do nothing.
func (v *Verifier) Start(ctx context.Context) {
	v.startOnce.Do(func() {
		var calls []*fetchCall
		var sources []*keySource
		for _, is := range v.ordered {
			if is.keys == nil {
				continue
			}
			call, err := is.keys.start(true)
			if err != nil {
				return // closed
			}
			calls = append(calls, call)
			sources = append(sources, is.keys)
		}
		for i, call := range calls {
			if err := call.wait(ctx); err != nil {
				v.log.WarnContext(ctx, "identity: initial JWKS fetch failed; tokens of this issuer are denied until it succeeds",
					"issuer", sources[i].issuer, "error", err)
			}
		}
		for _, ks := range sources {
			v.run.spawn(ks.loop)
		}
	})
}

// Close stops background refreshes and waits for in-flight fetches to end.
// Verify keeps working with the keys already loaded, without refetching.
func (v *Verifier) Close() {
	v.run.close()
}

// Status reports the key set of every issuer that has a JWKS, in
// configuration order.
func (v *Verifier) Status() []IssuerStatus {
	var out []IssuerStatus
	for _, is := range v.ordered {
		if is.keys != nil {
			out = append(out, is.keys.status())
		}
	}
	return out
}

// Ready returns nil when every issuer with a JWKS has a key set loaded, or
// an error naming those that do not.
func (v *Verifier) Ready() error {
	var missing []string
	for _, st := range v.Status() {
		if !st.Loaded {
			missing = append(missing, fmt.Sprintf("%q (%s)", st.Issuer, st.LastError))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no signing keys loaded yet for issuer(s) %s", strings.Join(missing, ", "))
	}
	return nil
}

// Forget drops a token, identified by Token.RawHash, from the verified-token
// and introspection caches.
func (v *Verifier) Forget(rawHash [32]byte) {
	v.cache.forget(rawHash)
	v.icache.forget(rawHash)
}

// PurgeIntrospectionCache drops every cached introspection result, so the
// next use of each opaque token asks the issuer again (e.g. after a
// revocation event).
func (v *Verifier) PurgeIntrospectionCache() {
	v.icache.purge()
}

// Verify verifies a raw bearer token and returns its facts. Every failure
// is an *Error; the request must then be denied.
//
// A token with exactly two dots is a JWT (compact JWS). It is verified with
// the key set of the issuer named by its unverified "iss" (used only to
// choose the keys), then its signature, algorithm, type and claims are
// checked. Any other token is opaque and is introspected when an issuer is
// configured for that. Verified tokens are cached until they expire,
// introspection results for at most cache_ttl. A cache hit costs a keyed
// maphash and a comparison with the cached token; it allocates nothing.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	tok, e := v.verify(ctx, raw)
	if e != nil {
		return nil, e
	}
	return tok, nil
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Token, *Error) {
	if raw == "" {
		return nil, invalid(DescMalformed, "empty token")
	}
	if len(raw) > v.maxBytes {
		return nil, invalid(DescTooLarge, fmt.Sprintf("token of %d bytes exceeds the %d-byte limit", len(raw), v.maxBytes))
	}
	now := v.now()
	// A hit is the very token verified before (the cache compares it), so
	// it passed every check below then.
	if c, ok := v.cache.get(raw, now); ok {
		if c.keys == nil || c.keys.has(c.thumb) {
			return c.tok, nil
		}
		v.cache.remove(raw)
	}
	if i := invalidTokenChar(raw); i >= 0 {
		return nil, invalid(DescMalformed, fmt.Sprintf("byte %d is not a valid token character", i))
	}
	hash := sha256.Sum256([]byte(raw))
	switch strings.Count(raw, ".") {
	case 2:
		return v.verifyJWT(ctx, raw, hash, now)
	case 4:
		if v.introspect == nil {
			return nil, invalid(DescUnsupported, "encrypted JWTs (JWE) are not accepted")
		}
	default:
		if v.introspect == nil {
			return nil, invalid(DescMalformed, "not a JWT, and no issuer introspects opaque tokens")
		}
	}
	return v.verifyOpaque(ctx, raw, hash, now)
}

// invalidTokenChar returns the index of the first byte that may not appear
// in a bearer token (RFC 6750 §2.1 b64token), or -1.
func invalidTokenChar(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/', c == '=':
		default:
			return i
		}
	}
	return -1
}

func (v *Verifier) verifyJWT(ctx context.Context, raw string, hash [32]byte, now time.Time) (*Token, *Error) {
	msg, err := jws.Parse([]byte(raw), jws.WithCompact())
	if err != nil {
		return nil, invalidErr(DescMalformed, "not a compact JWS", err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 || sigs[0].ProtectedHeaders() == nil {
		return nil, invalid(DescMalformed, "not a single-signature compact JWS")
	}
	hdr := sigs[0].ProtectedHeaders()
	algv, ok := hdr.Algorithm()
	if !ok {
		return nil, invalid(DescMalformed, "no alg header")
	}
	alg := algv.String()
	// Extensions change how a token must be processed; none is supported.
	switch {
	case hdr.Has("crit"):
		return nil, invalid(DescUnsupported, "crit header present; no JWS extension is supported")
	case hdr.Has("b64"):
		return nil, invalid(DescUnsupported, "b64 header present; unencoded payloads are not accepted")
	case hdr.Has("cty"):
		return nil, invalid(DescUnsupported, "cty header present; nested tokens are not accepted")
	}
	// jku, x5u, x5c and jwk are deliberately ignored: keys come only from
	// the issuer's configured JWKS, and kid is only a lookup key into it.
	typ, hasTyp := hdr.Type()
	kid, _ := hdr.KeyID()

	issName, e := unverifiedIssuer(msg.Payload())
	if e != nil {
		return nil, e
	}
	is := v.issuers[issName]
	if is == nil {
		return nil, invalid(DescUnknownIssuer, fmt.Sprintf("iss %q is not a configured issuer", clip(issName)))
	}
	if len(raw) > is.maxBytes {
		return nil, invalid(DescTooLarge, fmt.Sprintf("token of %d bytes exceeds issuer %q's %d-byte limit", len(raw), is.name, is.maxBytes))
	}
	sa, ok := is.algs[alg]
	if !ok {
		return nil, invalid(DescAlgorithm, fmt.Sprintf("alg %q is not in issuer %q's allowlist", clip(alg), is.name))
	}
	if e := is.checkType(typ, hasTyp); e != nil {
		return nil, e
	}

	var (
		payload []byte
		ck      cachedToken
	)
	if _, isHMAC := hmacMinSecret[alg]; isHMAC {
		// Only the configured secret, never a JWKS key (no key confusion).
		p, err := jwsVerify(raw, sa, is.hmacKey)
		if err != nil {
			return nil, invalidErr(DescSignature, fmt.Sprintf("%s signature does not verify with issuer %q's secret", alg, is.name), err)
		}
		payload = p
	} else {
		k, p, e := v.verifyWithJWKS(ctx, is, raw, kid, alg, sa)
		if e != nil {
			return nil, e
		}
		payload, ck.keys, ck.thumb = p, is.keys, k.thumb
	}

	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, invalidErr(DescMalformed, "invalid claims", err)
	}
	tok, e := is.rules.tokenFromClaims(claims, hash, now, true)
	if e != nil {
		return nil, e
	}
	ck.tok = tok
	if now.Before(tok.Expiry) {
		v.cache.add(raw, hash, ck, tok.Expiry)
	}
	return tok, nil
}

// jwsVerify verifies the compact JWS raw with one algorithm and key,
// requiring the header's alg to equal alg and rejecting unknown critical
// extensions, and returns the payload.
func jwsVerify(raw string, alg jwa.SignatureAlgorithm, key any) ([]byte, error) {
	return jws.Verify([]byte(raw),
		jws.WithCompact(),
		jws.WithKey(alg, key),
		jws.WithAlgorithmMatch(true),
		jws.WithCritValidation(true),
	)
}

// verifyWithJWKS finds the issuer key that verifies raw. An unknown kid
// (or, without kid, no verifying key) triggers one rate-limited refetch of
// the key set, for key rotation.
func (v *Verifier) verifyWithJWKS(ctx context.Context, is *issuer, raw, kid, alg string, sa jwa.SignatureAlgorithm) (*verifyKey, []byte, *Error) {
	ks := is.keys
	if ks == nil {
		return nil, nil, invalid(DescKeyNotFound, fmt.Sprintf("issuer %q has no JWKS configured", is.name))
	}
	set := ks.current()
	tried := make(map[string]bool)
	var lastErr error
	try := func(s *keySet) (*verifyKey, []byte, bool) {
		for _, k := range s.candidates(kid, alg) {
			if tried[k.thumb] {
				continue
			}
			tried[k.thumb] = true
			p, err := jwsVerify(raw, sa, k.raw)
			if err == nil {
				return k, p, true
			}
			lastErr = err
		}
		return nil, nil, false
	}
	if k, p, ok := try(set); ok {
		return k, p, nil
	}
	if len(tried) > 0 && kid != "" {
		return nil, nil, invalidErr(DescSignature, fmt.Sprintf("%s signature does not verify with issuer %q's key %q", alg, is.name, clip(kid)), lastErr)
	}
	// The key may be new: the issuer rotated keys since the last fetch.
	if err := ks.refetch(ctx); err != nil {
		switch {
		case set == nil:
			return nil, nil, unavailable(fmt.Sprintf("no key set loaded for issuer %q", is.name), err)
		case len(tried) > 0:
			return nil, nil, invalidErr(DescSignature, fmt.Sprintf("%s signature does not verify with any of issuer %q's keys", alg, is.name), lastErr)
		default:
			return nil, nil, invalidErr(DescKeyNotFound, fmt.Sprintf("issuer %q has no %s key with kid %q; not refetched", is.name, alg, clip(kid)), err)
		}
	}
	if k, p, ok := try(ks.current()); ok {
		return k, p, nil
	}
	if len(tried) > 0 {
		return nil, nil, invalidErr(DescSignature, fmt.Sprintf("%s signature does not verify with any of issuer %q's keys", alg, is.name), lastErr)
	}
	return nil, nil, invalid(DescKeyNotFound, fmt.Sprintf("issuer %q has no %s key with kid %q, even after refetching its JWKS", is.name, alg, clip(kid)))
}

// clip shortens an unverified, attacker-chosen value for an error reason.
func clip(s string) string {
	const limit = 128
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}

// unverifiedIssuer reads "iss" from an unverified payload. It only selects
// the key set; every claim is checked again after the signature.
func unverifiedIssuer(payload []byte) (string, *Error) {
	var p struct {
		Iss json.RawMessage `json:"iss"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", invalidErr(DescMalformed, "payload is not a JSON object", err)
	}
	if p.Iss == nil {
		return "", invalid(DescMissingClaim, "missing claim iss")
	}
	var iss string
	if err := json.Unmarshal(p.Iss, &iss); err != nil {
		return "", invalid(DescMalformed, "claim iss is not a string")
	}
	return iss, nil
}

// checkType applies the explicit-typing rules (RFC 8725 §3.11): a security
// event token never passes as an access token; with token_type set the typ
// header must match it; otherwise only JWT or at+jwt (or none) is accepted.
func (is *issuer) checkType(typ string, present bool) *Error {
	t := normalizeType(typ)
	switch {
	case t == "secevent+jwt":
		return invalid(DescType, "typ secevent+jwt: a security event token is not an access token")
	case is.tokenType != "":
		if !present || t != is.tokenType {
			return invalid(DescType, fmt.Sprintf("typ %q does not match issuer %q's token_type %q", clip(typ), is.name, is.tokenType))
		}
	case present && t != "jwt" && t != "at+jwt":
		return invalid(DescType, fmt.Sprintf("typ %q is not an access token type", clip(typ)))
	}
	return nil
}

func (v *Verifier) verifyOpaque(ctx context.Context, raw string, hash [32]byte, now time.Time) (*Token, *Error) {
	if len(raw) > v.introspect.maxBytes {
		return nil, invalid(DescTooLarge, fmt.Sprintf("opaque token of %d bytes exceeds issuer %q's %d-byte limit", len(raw), v.introspect.name, v.introspect.maxBytes))
	}
	if tok, ok := v.icache.get(raw, now); ok {
		return tok, nil
	}
	f := &v.opaque
	f.mu.Lock()
	call, ok := f.calls[hash]
	if !ok {
		// A call that finished since the lookup above has filled the cache
		// before leaving f.calls, so look again under the lock.
		if tok, ok := v.icache.get(raw, now); ok {
			f.mu.Unlock()
			return tok, nil
		}
		call = &opaqueCall{done: make(chan struct{})}
		// The call runs detached from this request so that one caller
		// giving up does not fail the others; it is bounded by the
		// introspection timeout.
		if !v.run.spawn(func(bg context.Context) {
			call.tok, call.err = v.introspectToken(bg, raw, hash, now)
			f.mu.Lock()
			delete(f.calls, hash)
			f.mu.Unlock()
			close(call.done)
		}) {
			f.mu.Unlock()
			return nil, unavailable("introspection", errClosed)
		}
		f.calls[hash] = call
	}
	f.mu.Unlock()
	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return nil, unavailable("introspection: request cancelled", ctx.Err())
	}
}

// introspectToken asks the issuer about an opaque token, validates the
// answer and caches an active result.
func (v *Verifier) introspectToken(ctx context.Context, raw string, hash [32]byte, now time.Time) (*Token, *Error) {
	is := v.introspect
	claims, err := is.in.call(ctx, raw)
	switch {
	case errors.Is(err, errInactive):
		return nil, invalid(DescInactive, fmt.Sprintf("issuer %q reports the token inactive", is.name))
	case err != nil:
		return nil, unavailable(fmt.Sprintf("introspection at issuer %q failed", is.name), err)
	}
	tok, e := is.rules.tokenFromClaims(claims, hash, now, false)
	if e != nil {
		return nil, e
	}
	// Never reuse a result past the token's expiry, nor longer than the TTL
	// (revocation at the issuer shows after at most cache_ttl).
	expires := now.Add(is.cacheTTL)
	if !tok.Expiry.IsZero() && tok.Expiry.Before(expires) {
		expires = tok.Expiry
	}
	if now.Before(expires) {
		v.icache.add(raw, hash, tok, expires)
	}
	return tok, nil
}
