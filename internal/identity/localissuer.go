package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// LocalIssuer is an in-process token issuer for tests, examples and the
// demo: it holds an ES256 or RS256 signing key, serves an OpenID Connect
// discovery document and a JWKS over HTTP, and mints access tokens (typ
// at+jwt). It is safe for concurrent use. It is not an authorization
// server: it authenticates no one.
type LocalIssuer struct {
	issuer string
	alg    jwa.SignatureAlgorithm

	mu   sync.RWMutex
	keys []localKey // all published; the last one signs
	now  func() time.Time
}

type localKey struct {
	kid     string
	private any
	public  jwk.Key
}

// NewLocalIssuer creates an issuer whose "iss" is issuer (the URL at which
// its handler is served, e.g. "http://127.0.0.1:8081") with a fresh key for
// alg, "ES256" (the default when empty) or "RS256".
func NewLocalIssuer(issuer, alg string) (*LocalIssuer, error) {
	if issuer == "" {
		return nil, errors.New("local issuer: issuer URL is required")
	}
	if alg == "" {
		alg = "ES256"
	}
	var sa jwa.SignatureAlgorithm
	switch alg {
	case "ES256":
		sa = jwa.ES256()
	case "RS256":
		sa = jwa.RS256()
	default:
		return nil, fmt.Errorf("local issuer: algorithm %q is not supported (use ES256 or RS256)", alg)
	}
	li := &LocalIssuer{issuer: strings.TrimSuffix(issuer, "/"), alg: sa, now: time.Now}
	if err := li.Rotate(); err != nil {
		return nil, err
	}
	return li, nil
}

// Issuer returns the issuer identifier ("iss").
func (li *LocalIssuer) Issuer() string { return li.issuer }

// JWKSURI returns the URL of the issuer's JWKS.
func (li *LocalIssuer) JWKSURI() string { return li.issuer + "/jwks.json" }

// Algorithm returns the signing algorithm ("ES256" or "RS256").
func (li *LocalIssuer) Algorithm() string { return li.alg.String() }

// KeyID returns the kid of the current signing key.
func (li *LocalIssuer) KeyID() string {
	li.mu.RLock()
	defer li.mu.RUnlock()
	return li.keys[len(li.keys)-1].kid
}

// Rotate generates a new signing key. Earlier keys stay in the JWKS, so
// tokens they signed remain valid until they expire.
func (li *LocalIssuer) Rotate() error {
	var priv any
	var err error
	switch li.alg {
	case jwa.ES256():
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return fmt.Errorf("local issuer: generate key: %w", err)
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		return fmt.Errorf("local issuer: public key: %w", err)
	}
	if err := jwk.AssignKeyID(pub); err != nil {
		return fmt.Errorf("local issuer: key id: %w", err)
	}
	kid, _ := pub.KeyID()
	for _, kv := range [][2]any{{jwk.AlgorithmKey, li.alg}, {jwk.KeyUsageKey, "sig"}} {
		if err := pub.Set(kv[0].(string), kv[1]); err != nil {
			return fmt.Errorf("local issuer: set %s: %w", kv[0], err)
		}
	}
	li.mu.Lock()
	li.keys = append(li.keys, localKey{kid: kid, private: priv, public: pub})
	li.mu.Unlock()
	return nil
}

// IssuerConfig returns a configuration that trusts this issuer for
// audience, using discovery, at+jwt typing and its algorithm.
func (li *LocalIssuer) IssuerConfig(audience string) IssuerConfig {
	return IssuerConfig{
		Issuer:     li.issuer,
		Discovery:  Discovery{Enabled: true},
		Audiences:  []string{audience},
		Algorithms: []string{li.alg.String()},
		TokenType:  "at+jwt",
		RolesClaim: "roles",
	}
}

// Mint signs an access token (typ at+jwt) with the current key. claims are
// copied; "iss" defaults to the issuer, "iat" to now, "exp" to now+ttl and
// "jti" to a random value. time.Time values become NumericDates. ttl must be
// positive unless claims carry "exp".
func (li *LocalIssuer) Mint(claims map[string]any, ttl time.Duration) (string, error) {
	if _, ok := claims["exp"]; !ok && ttl <= 0 {
		return "", errors.New("local issuer: ttl must be positive when claims have no exp")
	}
	c := make(map[string]any, len(claims)+4)
	for k, v := range claims {
		if t, ok := v.(time.Time); ok {
			v = t.Unix()
		}
		c[k] = v
	}
	li.mu.RLock()
	now := li.now()
	li.mu.RUnlock()
	setDefault(c, "iss", li.issuer)
	setDefault(c, "iat", now.Unix())
	if ttl > 0 {
		setDefault(c, "exp", now.Add(ttl).Unix())
	}
	setDefault(c, "jti", rand.Text())
	return li.sign(c, map[string]any{"typ": "at+jwt"})
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// sign signs claims with the current key, adding headers (which may
// override typ and kid, for tests of hostile tokens).
func (li *LocalIssuer) sign(claims map[string]any, headers map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("local issuer: encode claims: %w", err)
	}
	li.mu.RLock()
	k := li.keys[len(li.keys)-1]
	li.mu.RUnlock()
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, k.kid); err != nil {
		return "", fmt.Errorf("local issuer: header kid: %w", err)
	}
	for name, v := range headers {
		if err := hdr.Set(name, v); err != nil {
			return "", fmt.Errorf("local issuer: header %s: %w", name, err)
		}
	}
	tok, err := jws.Sign(payload, jws.WithKey(li.alg, k.private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("local issuer: sign: %w", err)
	}
	return string(tok), nil
}

// ServeHTTP serves the discovery document at
// <path>/.well-known/openid-configuration and the JWKS at <path>/jwks.json,
// for any path prefix (so the handler works mounted or stripped).
func (li *LocalIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var doc any
	switch {
	case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
		doc = map[string]any{
			"issuer":                                li.issuer,
			"jwks_uri":                              li.JWKSURI(),
			"id_token_signing_alg_values_supported": []string{li.alg.String()},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
		}
	case strings.HasSuffix(r.URL.Path, "/jwks.json"):
		set := jwk.NewSet()
		li.mu.RLock()
		for _, k := range li.keys {
			if err := set.AddKey(k.public); err != nil {
				li.mu.RUnlock()
				http.Error(w, "build key set", http.StatusInternalServerError)
				return
			}
		}
		li.mu.RUnlock()
		doc = set
		w.Header().Set("Cache-Control", "public, max-age=300")
	default:
		http.NotFound(w, r)
		return
	}
	body, err := json.Marshal(doc)
	if err != nil {
		http.Error(w, "encode document", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
