package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults and bounds of the identity configuration.
const (
	DefaultCacheSize     = 100_000
	DefaultLeeway        = 30 * time.Second
	MaxLeeway            = 60 * time.Second
	DefaultPrincipalType = "User"
	DefaultRoleType      = "Role"
	DefaultMaxTokenBytes = 8192

	DefaultIntrospectionCacheTTL = 30 * time.Second
	MaxIntrospectionCacheTTL     = 5 * time.Minute
	DefaultIntrospectionTimeout  = 5 * time.Second
	MaxIntrospectionTimeout      = 30 * time.Second

	minMaxTokenBytes = 256
	maxMaxTokenBytes = 64 << 10
	maxCacheSize     = 10_000_000
)

// defaultAlgorithms is the signature algorithm allowlist of an issuer that
// does not list its own.
var defaultAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// asymmetricAlgorithms are the algorithms verified with keys from an issuer's
// JWKS; hmacAlgorithms are verified with the issuer's hmac_secret only. The
// two sets never share a key source, which is what rules out key confusion.
var (
	asymmetricAlgorithms = map[string]bool{
		"RS256": true, "RS384": true, "RS512": true,
		"PS256": true, "PS384": true, "PS512": true,
		"ES256": true, "ES384": true, "ES512": true,
		"EdDSA": true,
	}
	// hmacMinSecret is the minimum secret length per HMAC algorithm: the
	// hash output size (RFC 7518 §3.2).
	hmacMinSecret = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}
)

// Config configures token verification: the trusted issuers and the size of
// the verified-token cache.
type Config struct {
	Issuers []IssuerConfig `yaml:"issuers"`
	// CacheSize bounds the number of verified tokens kept (default 100000).
	// The same bound applies separately to cached introspection results.
	CacheSize int `yaml:"cache_size"`
}

// IssuerConfig describes one trusted token issuer.
type IssuerConfig struct {
	// Issuer is the exact "iss" value of the issuer's tokens.
	Issuer string `yaml:"issuer"`
	// Discovery enables OpenID Connect discovery (true: the document at
	// Issuer + "/.well-known/openid-configuration"; a URL: that document,
	// e.g. RFC 8414 metadata). The document's jwks_uri is used and its
	// "issuer" must equal Issuer. Mutually exclusive with JWKSURI.
	Discovery Discovery `yaml:"discovery"`
	// JWKSURI is the issuer's JWK Set URL when discovery is not used.
	JWKSURI string `yaml:"jwks_uri"`
	// Audiences lists the accepted audiences; a token's "aud" must contain
	// at least one of them.
	Audiences []string `yaml:"audiences"`
	// Algorithms is the signature algorithm allowlist (default RS256, PS256,
	// ES256, EdDSA). "none" is never accepted. HS256/HS384/HS512 are
	// accepted only when listed here together with HMACSecret, and are then
	// verified with that secret only, never with a JWKS key.
	Algorithms []string `yaml:"algorithms"`
	// HMACSecret is the shared secret for HS* algorithms (at least as many
	// bytes as the hash output: 32 for HS256).
	HMACSecret string `yaml:"hmac_secret"`
	// TokenType, when set (e.g. "at+jwt"), is the required JWS "typ" header
	// (case-insensitive, "application/" prefix allowed). When empty, only an
	// absent typ, "JWT" or "at+jwt" is accepted. "secevent+jwt" is always
	// rejected.
	TokenType string `yaml:"token_type"`
	// Leeway is the clock skew tolerated on exp, nbf and iat (at most 60s;
	// zero means the default, 30s).
	Leeway time.Duration `yaml:"leeway"`
	// PrincipalType is the Cedar entity type of the token's subject
	// (default "User").
	PrincipalType string `yaml:"principal_type"`
	// RolesClaim names the claim holding roles or groups: a top-level claim
	// name ("roles", "https://example.com/roles") or a dotted path into
	// nested objects ("realm_access.roles"). Empty means no roles.
	RolesClaim string `yaml:"roles_claim"`
	// RoleType is the Cedar entity type of roles (default "Role").
	RoleType string `yaml:"role_type"`
	// MaxTokenBytes bounds the raw token length (default 8192).
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// AllowHTTP permits plain-http discovery, JWKS and introspection URLs
	// on hosts other than loopback. For development only.
	AllowHTTP bool `yaml:"allow_http"`
	// Introspection, when set, sends opaque (non-JWT) tokens to this
	// issuer's RFC 7662 introspection endpoint. At most one issuer may set
	// it, so that a token is never disclosed to a different issuer.
	Introspection *IntrospectionConfig `yaml:"introspection"`
}

// IntrospectionConfig configures RFC 7662 token introspection for opaque
// tokens. The client authenticates with client_secret_basic.
type IntrospectionConfig struct {
	Endpoint     string `yaml:"endpoint"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// CacheTTL bounds how long an active result is reused (default 30s, at
	// most 5m); a result is never reused past the token's exp.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// Timeout bounds one introspection call (default 5s, at most 30s).
	Timeout time.Duration `yaml:"timeout"`
}

// Discovery is the "discovery" key of an issuer: either a boolean or the URL
// of the discovery document.
type Discovery struct {
	Enabled bool
	// URL is the explicit document URL; empty means the OIDC default
	// derived from the issuer.
	URL string
}

// DocumentURL returns the discovery document URL for issuer, or "" when
// discovery is disabled.
func (d Discovery) DocumentURL(issuer string) string {
	switch {
	case !d.Enabled:
		return ""
	case d.URL != "":
		return d.URL
	default:
		return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	}
}

// UnmarshalYAML accepts a boolean or a URL string.
func (d *Discovery) UnmarshalYAML(unmarshal func(any) error) error {
	var v any
	if err := unmarshal(&v); err != nil {
		return err
	}
	return d.set(v)
}

// MarshalYAML writes the URL when set, else the boolean.
func (d Discovery) MarshalYAML() (any, error) {
	if d.Enabled && d.URL != "" {
		return d.URL, nil
	}
	return d.Enabled, nil
}

// UnmarshalJSON accepts a boolean or a URL string.
func (d *Discovery) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return d.set(v)
}

// MarshalJSON writes the URL when set, else the boolean.
func (d Discovery) MarshalJSON() ([]byte, error) {
	v, _ := d.MarshalYAML()
	return json.Marshal(v)
}

func (d *Discovery) set(v any) error {
	switch v := v.(type) {
	case nil:
		*d = Discovery{}
	case bool:
		*d = Discovery{Enabled: v}
	case string:
		if v == "" {
			*d = Discovery{}
			return nil
		}
		*d = Discovery{Enabled: true, URL: v}
	default:
		return fmt.Errorf("discovery: want true, false or a URL, got %T", v)
	}
	return nil
}

// SetDefaults fills in unset values.
func (c *Config) SetDefaults() {
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	for i := range c.Issuers {
		c.Issuers[i].setDefaults()
	}
}

func (ic *IssuerConfig) setDefaults() {
	if len(ic.Algorithms) == 0 {
		ic.Algorithms = append([]string(nil), defaultAlgorithms...)
	}
	if ic.Leeway == 0 {
		ic.Leeway = DefaultLeeway
	}
	if ic.PrincipalType == "" {
		ic.PrincipalType = DefaultPrincipalType
	}
	if ic.RoleType == "" {
		ic.RoleType = DefaultRoleType
	}
	if ic.MaxTokenBytes == 0 {
		ic.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if in := ic.Introspection; in != nil {
		if in.CacheTTL == 0 {
			in.CacheTTL = DefaultIntrospectionCacheTTL
		}
		if in.Timeout == 0 {
			in.Timeout = DefaultIntrospectionTimeout
		}
	}
}

// cedarTypeName matches a Cedar entity type name such as "User" or "Org::User".
var cedarTypeName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$`)

// tokenTypeSyntax matches a media subtype such as "at+jwt".
var tokenTypeSyntax = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+-]*$`)

// Validate reports every configuration error; each names its key. Call
// SetDefaults first.
func (c *Config) Validate() error {
	var errs []error
	if c.CacheSize < 1 || c.CacheSize > maxCacheSize {
		errs = append(errs, fmt.Errorf("cache_size: must be between 1 and %d, got %d", maxCacheSize, c.CacheSize))
	}
	seen := make(map[string]int, len(c.Issuers))
	introspecting := -1
	for i := range c.Issuers {
		ic := &c.Issuers[i]
		key := fmt.Sprintf("issuers[%d]", i)
		if j, dup := seen[ic.Issuer]; dup && ic.Issuer != "" {
			errs = append(errs, fmt.Errorf("%s.issuer: %q is already configured in issuers[%d]", key, ic.Issuer, j))
		}
		seen[ic.Issuer] = i
		if ic.Introspection != nil {
			if introspecting >= 0 {
				errs = append(errs, fmt.Errorf("%s.introspection: only one issuer may introspect opaque tokens (issuers[%d] already does); a token must not be sent to a different issuer", key, introspecting))
			} else {
				introspecting = i
			}
		}
		errs = append(errs, ic.validate(key)...)
	}
	return errors.Join(errs...)
}

func (ic *IssuerConfig) validate(key string) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(key+"."+format, args...))
	}
	if ic.Issuer == "" {
		add("issuer: required (the exact \"iss\" value of the issuer's tokens)")
	}
	if ic.Discovery.Enabled && ic.JWKSURI != "" {
		add("discovery: set either discovery or jwks_uri, not both")
	}
	if doc := ic.Discovery.DocumentURL(ic.Issuer); doc != "" {
		if err := checkURL(doc, ic.AllowHTTP); err != nil {
			if ic.Discovery.URL == "" {
				add("issuer: discovery needs an http(s) issuer URL: %v", err)
			} else {
				add("discovery: %v", err)
			}
		}
	}
	if ic.JWKSURI != "" {
		if err := checkURL(ic.JWKSURI, ic.AllowHTTP); err != nil {
			add("jwks_uri: %v", err)
		}
	}
	hasJWKS := ic.Discovery.Enabled || ic.JWKSURI != ""

	if len(ic.Audiences) == 0 {
		add("audiences: at least one audience is required")
	}
	for j, a := range ic.Audiences {
		if a == "" {
			add("audiences[%d]: must not be empty", j)
		}
	}

	seenAlg := make(map[string]bool, len(ic.Algorithms))
	hasHMAC := false
	for j, alg := range ic.Algorithms {
		switch {
		case strings.EqualFold(alg, "none"):
			add("algorithms[%d]: \"none\" is never accepted", j)
		case asymmetricAlgorithms[alg]:
			if !hasJWKS && ic.Introspection == nil {
				add("algorithms[%d]: %s needs discovery or jwks_uri to obtain keys", j, alg)
			}
		case hmacMinSecret[alg] > 0:
			hasHMAC = true
			if ic.HMACSecret == "" {
				add("algorithms[%d]: %s needs hmac_secret", j, alg)
			} else if len(ic.HMACSecret) < hmacMinSecret[alg] {
				add("hmac_secret: %s needs at least %d bytes of secret, got %d", alg, hmacMinSecret[alg], len(ic.HMACSecret))
			}
		default:
			add("algorithms[%d]: unsupported algorithm %q (supported: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA, HS256/384/512)", j, alg)
		}
		if seenAlg[alg] {
			add("algorithms[%d]: %s is listed twice", j, alg)
		}
		seenAlg[alg] = true
	}
	if ic.HMACSecret != "" && !hasHMAC {
		add("hmac_secret: set, but no HS256/HS384/HS512 algorithm is listed in algorithms")
	}
	if !hasJWKS && ic.HMACSecret == "" && ic.Introspection == nil {
		add("jwks_uri: the issuer has no way to verify tokens; set discovery, jwks_uri, hmac_secret or introspection")
	}

	if ic.TokenType != "" {
		tt := normalizeType(ic.TokenType)
		switch {
		case !tokenTypeSyntax.MatchString(tt):
			add("token_type: %q is not a media type such as \"at+jwt\"", ic.TokenType)
		case tt == "secevent+jwt":
			add("token_type: security event tokens (secevent+jwt) are never accepted as access tokens")
		}
	}
	if ic.Leeway < 0 || ic.Leeway > MaxLeeway {
		add("leeway: must be between 0s and %s, got %s", MaxLeeway, ic.Leeway)
	}
	if !cedarTypeName.MatchString(ic.PrincipalType) {
		add("principal_type: %q is not a Cedar entity type name (e.g. \"User\" or \"App::User\")", ic.PrincipalType)
	}
	if !cedarTypeName.MatchString(ic.RoleType) {
		add("role_type: %q is not a Cedar entity type name (e.g. \"Role\")", ic.RoleType)
	}
	if rc := ic.RolesClaim; rc != "" && (strings.Contains(rc, "..") || strings.HasPrefix(rc, ".") || strings.HasSuffix(rc, ".")) {
		add("roles_claim: %q has an empty path segment", ic.RolesClaim)
	}
	if ic.MaxTokenBytes < minMaxTokenBytes || ic.MaxTokenBytes > maxMaxTokenBytes {
		add("max_token_bytes: must be between %d and %d, got %d", minMaxTokenBytes, maxMaxTokenBytes, ic.MaxTokenBytes)
	}
	if in := ic.Introspection; in != nil {
		if in.Endpoint == "" {
			add("introspection.endpoint: required")
		} else if err := checkURL(in.Endpoint, ic.AllowHTTP); err != nil {
			add("introspection.endpoint: %v", err)
		}
		if in.ClientID == "" {
			add("introspection.client_id: required")
		}
		if in.ClientSecret == "" {
			add("introspection.client_secret: required")
		}
		if in.CacheTTL < 0 || in.CacheTTL > MaxIntrospectionCacheTTL {
			add("introspection.cache_ttl: must be between 0s and %s, got %s", MaxIntrospectionCacheTTL, in.CacheTTL)
		}
		if in.Timeout < 0 || in.Timeout > MaxIntrospectionTimeout {
			add("introspection.timeout: must be between 0s and %s, got %s", MaxIntrospectionTimeout, in.Timeout)
		}
	}
	return errs
}

// checkURL accepts absolute https URLs, and http URLs on loopback hosts (or
// anywhere when allowHTTP is set).
func checkURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", raw, err)
	}
	if u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("%q must be an absolute URL without fragment", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowHTTP || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q uses plain http; use https (or set allow_http for development)", raw)
	default:
		return fmt.Errorf("%q must use https", raw)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// normalizeType lower-cases a typ header value and removes the optional
// "application/" prefix (RFC 7515 §4.1.9).
func normalizeType(typ string) string {
	t := strings.ToLower(strings.TrimSpace(typ))
	return strings.TrimPrefix(t, "application/")
}
