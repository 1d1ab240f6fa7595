package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults of the gateway configuration.
const (
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultReadTimeout           = 60 * time.Second
	DefaultIdleTimeout           = 120 * time.Second
	DefaultMaxHeaderBytes        = 32 << 10
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultUpstreamIdleTimeout   = 90 * time.Second
	DefaultMaxIdleConnsPerHost   = 64
	DefaultForwardAuthPath       = "/.vigil/auth"
	DefaultWebSocketMaxMessage   = 16 << 20
	DefaultSubjectHeader         = "X-Vigil-Subject"
	DefaultRolesHeader           = "X-Vigil-Roles"
	DefaultSessionHeader         = "X-Vigil-Session"
	DefaultRealm                 = "vigil"
)

// Config configures the enforcement gateway.
//
//	gateway:
//	  listen: ":8443"
//	  tls: {cert: tls.crt, key: tls.key, client_ca: ca.crt, client_auth: request}
//	  upstreams:
//	    - name: todo
//	      url: http://127.0.0.1:9000
//	      pass_authorization: false
//	  trusted_proxies: [10.0.0.0/8]
//	  geoip: /var/lib/GeoIP/GeoLite2-City.mmdb
//	  device_header: X-Device-ID
type Config struct {
	// Listen is the address of the gateway's own listener ("" when the
	// gateway is mounted on another listener).
	Listen string `yaml:"listen"`
	// TLS, when set, serves Listen over TLS (HTTP/2 via ALPN).
	TLS *ListenerTLS `yaml:"tls"`
	// H2C serves cleartext HTTP/2 (prior knowledge) next to HTTP/1.1 on a
	// plain listener.
	H2C bool `yaml:"h2c"`
	// ReadHeaderTimeout bounds reading request headers (default 10s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included (default
	// 60s). WebSocket connections are exempt once upgraded.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes idle keep-alive connections (default 120s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line and headers; larger requests
	// get 431 (default 32 KiB).
	MaxHeaderBytes int `yaml:"max_header_bytes"`

	// Upstreams are the services requests are forwarded to. A route names
	// its upstream; routes that name none go to the first one.
	Upstreams []Upstream `yaml:"upstreams"`

	// TrustedProxies are the addresses or CIDR prefixes of proxies in front
	// of the gateway. Only their X-Forwarded-For/-Proto/-Host, X-Request-ID,
	// device header and forward-auth headers are believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// IdentityHeaders name the headers that carry the verified identity
	// upstream (and in forward-auth answers). Client-supplied values are
	// always removed.
	IdentityHeaders IdentityHeaders `yaml:"identity_headers"`
	// DeviceHeader names a header that carries the caller's device id, set
	// by a trusted proxy (e.g. an MDM-aware edge). Ignored and removed when
	// the peer is not a trusted proxy. Empty disables it.
	DeviceHeader string `yaml:"device_header"`
	// GeoIP is the path of a MaxMind DB (.mmdb, GeoIP2/GeoLite2 City or
	// Country layout) used to fill context.geo.
	GeoIP string `yaml:"geoip"`

	// Realm is the realm of WWW-Authenticate challenges (default "vigil").
	Realm string `yaml:"realm"`
	// AuthorizationURI, when set, is added to CAE claims challenges as
	// authorization_uri: where clients obtain a fresh token.
	AuthorizationURI string `yaml:"authorization_uri"`

	// ForwardAuth configures the forward-auth endpoint for NGINX
	// auth_request, Traefik ForwardAuth and Caddy forward_auth.
	ForwardAuth ForwardAuth `yaml:"forward_auth"`
	// WebSocket configures WebSocket pass-through.
	WebSocket WebSocket `yaml:"websocket"`
}

// ListenerTLS configures TLS (and optionally mutual TLS) on the listener.
type ListenerTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA is a PEM bundle of CAs that sign client certificates.
	ClientCA string `yaml:"client_ca"`
	// ClientAuth is "none" (default), "request" (verify a certificate when
	// one is presented) or "require" (a verified certificate is required).
	ClientAuth string `yaml:"client_auth"`
}

// Upstream is one service behind the gateway.
type Upstream struct {
	Name string `yaml:"name"`
	// URL is the base URL (http or https); its path is prefixed to every
	// forwarded request path.
	URL string `yaml:"url"`
	// PassAuthorization forwards the client's Authorization header
	// (default true). Set it to false when the upstream trusts the identity
	// headers instead and should never see tokens.
	PassAuthorization *bool `yaml:"pass_authorization"`
	// PreserveHost forwards the client's Host header instead of the
	// upstream's host.
	PreserveHost bool `yaml:"preserve_host"`
	// DialTimeout bounds connecting (default 5s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for response headers once the
	// request is sent (default 30s); exceeding it answers 504.
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	// IdleConnTimeout closes idle upstream connections (default 90s).
	IdleConnTimeout time.Duration `yaml:"idle_conn_timeout"`
	// MaxIdleConnsPerHost bounds the idle connection pool (default 64).
	MaxIdleConnsPerHost int `yaml:"max_idle_conns_per_host"`
	// TLS configures https upstreams.
	TLS UpstreamTLS `yaml:"tls"`
}

// UpstreamTLS configures the TLS client used for an https upstream.
type UpstreamTLS struct {
	// CA is a PEM bundle of CAs trusted for the upstream (default: the
	// system roots).
	CA string `yaml:"ca"`
	// Cert and Key are a client certificate for mutual TLS.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName overrides the name verified in the upstream certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification. Never the
	// default; for development only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// IdentityHeaders name the headers that carry the verified identity.
type IdentityHeaders struct {
	Subject string `yaml:"subject"`
	Roles   string `yaml:"roles"`
	Session string `yaml:"session"`
}

// ForwardAuth configures the forward-auth endpoint.
type ForwardAuth struct {
	// Enabled serves the endpoint on the gateway listener (default true).
	// It only answers trusted proxies.
	Enabled *bool `yaml:"enabled"`
	// Path is the endpoint path (default "/.vigil/auth").
	Path string `yaml:"path"`
}

// WebSocket configures WebSocket pass-through.
type WebSocket struct {
	// MaxMessageBytes bounds one message in either direction (default
	// 16 MiB); a larger message closes the connection with 1009.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
}

// PassesAuthorization reports whether the client's Authorization header is
// forwarded to the upstream.
func (u *Upstream) PassesAuthorization() bool {
	return u.PassAuthorization == nil || *u.PassAuthorization
}

// Enable reports whether the forward-auth endpoint is served.
func (f ForwardAuth) Enable() bool { return f.Enabled == nil || *f.Enabled }

// SetDefaults fills in unset values.
func (c *Config) SetDefaults() {
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.TLS != nil && c.TLS.ClientAuth == "" {
		c.TLS.ClientAuth = "none"
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if u.DialTimeout == 0 {
			u.DialTimeout = DefaultDialTimeout
		}
		if u.ResponseHeaderTimeout == 0 {
			u.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
		}
		if u.IdleConnTimeout == 0 {
			u.IdleConnTimeout = DefaultUpstreamIdleTimeout
		}
		if u.MaxIdleConnsPerHost == 0 {
			u.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
		}
	}
	h := &c.IdentityHeaders
	if h.Subject == "" {
		h.Subject = DefaultSubjectHeader
	}
	if h.Roles == "" {
		h.Roles = DefaultRolesHeader
	}
	if h.Session == "" {
		h.Session = DefaultSessionHeader
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.ForwardAuth.Path == "" {
		c.ForwardAuth.Path = DefaultForwardAuthPath
	}
	if c.WebSocket.MaxMessageBytes == 0 {
		c.WebSocket.MaxMessageBytes = DefaultWebSocketMaxMessage
	}
}

// headerName matches an HTTP field name (RFC 9110 token).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// upstreamName matches an upstream name.
var upstreamName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// reservedHeaders may not be used as identity or device headers: they carry
// protocol semantics the gateway manages itself.
var reservedHeaders = map[string]bool{
	"Authorization": true, "Host": true, "Connection": true, "Upgrade": true,
	"Content-Length": true, "Transfer-Encoding": true, "Te": true, "Trailer": true,
	"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
	"Forwarded": true, "X-Request-Id": true, "Cookie": true,
}

// Validate reports every configuration error; each names its key. Call
// SetDefaults first.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Listen != "" {
		if _, _, err := splitHostPort(c.Listen); err != nil {
			add("listen: %q is not a host:port address: %v", c.Listen, err)
		}
	}
	if t := c.TLS; t != nil {
		if t.Cert == "" || t.Key == "" {
			add("tls: cert and key are both required")
		}
		switch t.ClientAuth {
		case "none", "request", "require":
		default:
			add("tls.client_auth: %q is not one of none, request, require", t.ClientAuth)
		}
		if t.ClientAuth != "none" && t.ClientCA == "" {
			add("tls.client_ca: required when client_auth is %q", t.ClientAuth)
		}
		if c.H2C {
			add("h2c: cleartext HTTP/2 cannot be combined with tls (TLS negotiates HTTP/2 itself)")
		}
	}
	for k, d := range map[string]time.Duration{
		"read_header_timeout": c.ReadHeaderTimeout, "read_timeout": c.ReadTimeout, "idle_timeout": c.IdleTimeout,
	} {
		if d < 0 {
			add("%s: must not be negative, got %s", k, d)
		}
	}
	if c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20 {
		add("max_header_bytes: must be between 1024 and %d, got %d", 1<<20, c.MaxHeaderBytes)
	}

	if len(c.Upstreams) == 0 && !c.ForwardAuth.Enable() {
		add("upstreams: at least one upstream is required (or enable forward_auth for a forward-auth-only gateway)")
	}
	names := make(map[string]int, len(c.Upstreams))
	for i := range c.Upstreams {
		errs = append(errs, c.Upstreams[i].validate(fmt.Sprintf("upstreams[%d]", i), names, i)...)
	}

	for i, p := range c.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			add("trusted_proxies[%d]: %v", i, err)
		}
	}
	seen := map[string]string{}
	for _, h := range []struct{ key, name string }{
		{"identity_headers.subject", c.IdentityHeaders.Subject},
		{"identity_headers.roles", c.IdentityHeaders.Roles},
		{"identity_headers.session", c.IdentityHeaders.Session},
		{"device_header", c.DeviceHeader},
	} {
		if h.name == "" {
			continue
		}
		canon := http.CanonicalHeaderKey(h.name)
		switch {
		case !headerName.MatchString(h.name):
			add("%s: %q is not a valid header name", h.key, h.name)
		case reservedHeaders[canon] || isHopByHop(canon):
			add("%s: %q is managed by the gateway and cannot carry identity", h.key, h.name)
		case seen[canon] != "":
			add("%s: %q is already used by %s", h.key, h.name, seen[canon])
		}
		seen[canon] = h.key
	}
	if c.Realm == "" || len(c.Realm) > 128 || !quotedSafe(c.Realm) {
		add("realm: %q must be 1-128 printable ASCII characters without quotes or backslashes", c.Realm)
	}
	if c.AuthorizationURI != "" {
		if u, err := url.Parse(c.AuthorizationURI); err != nil || u.Scheme != "https" || u.Host == "" || !quotedSafe(c.AuthorizationURI) {
			add("authorization_uri: %q must be an absolute https URL", c.AuthorizationURI)
		}
	}
	if fa := c.ForwardAuth; fa.Enable() {
		if !strings.HasPrefix(fa.Path, "/") || strings.ContainsAny(fa.Path, "?#% \t") {
			add("forward_auth.path: %q must be an absolute path without query, escapes or spaces", fa.Path)
		}
	}
	if c.WebSocket.MaxMessageBytes < 1 {
		add("websocket.max_message_bytes: must be positive, got %d", c.WebSocket.MaxMessageBytes)
	}
	return errors.Join(errs...)
}

func (u *Upstream) validate(key string, names map[string]int, i int) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(key+"."+format, args...)) }
	switch {
	case !upstreamName.MatchString(u.Name):
		add("name: %q must be 1-64 letters, digits, '.', '_' or '-'", u.Name)
	default:
		if j, dup := names[u.Name]; dup {
			add("name: %q is already used by upstreams[%d]", u.Name, j)
		}
		names[u.Name] = i
	}
	if pu, err := url.Parse(u.URL); err != nil {
		add("url: %v", err)
	} else {
		switch {
		case pu.Scheme != "http" && pu.Scheme != "https":
			add("url: %q must use http or https", u.URL)
		case pu.Host == "":
			add("url: %q has no host", u.URL)
		case pu.User != nil || pu.RawQuery != "" || pu.Fragment != "":
			add("url: %q must not carry credentials, a query or a fragment", u.URL)
		}
		if pu.Scheme == "http" && (u.TLS != UpstreamTLS{}) {
			add("tls: set, but url %q is plain http", u.URL)
		}
	}
	for k, d := range map[string]time.Duration{
		"dial_timeout": u.DialTimeout, "response_header_timeout": u.ResponseHeaderTimeout, "idle_conn_timeout": u.IdleConnTimeout,
	} {
		if d <= 0 {
			add("%s: must be positive, got %s", k, d)
		}
	}
	if u.MaxIdleConnsPerHost < 1 {
		add("max_idle_conns_per_host: must be positive, got %d", u.MaxIdleConnsPerHost)
	}
	if (u.TLS.Cert == "") != (u.TLS.Key == "") {
		add("tls: cert and key must be set together")
	}
	return errs
}

// parsePrefix accepts a CIDR prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
