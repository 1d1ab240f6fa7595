// Package config owns vigil.yaml: the typed configuration, strict decoding
// (unknown keys are errors), ${ENV} expansion, defaults and validation with
// errors that name the file and the key. Each feature package defines its
// own section type; this package assembles them into one document.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/vigil-authz/vigil/internal/authzen"
	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/replica"
	"github.com/vigil-authz/vigil/internal/risk"
	"github.com/vigil-authz/vigil/internal/route"
	"github.com/vigil-authz/vigil/internal/signal"
	"github.com/vigil-authz/vigil/internal/state"
)

// MaxFileBytes bounds the size of a configuration file.
const MaxFileBytes = 4 << 20

// Config is the whole of vigil.yaml.
type Config struct {
	Server   Server   `yaml:"server"`
	Policies Policies `yaml:"policies"`
	AuthZEN  AuthZEN  `yaml:"authzen"`
	Admin    Admin    `yaml:"admin"`
	Log      Log      `yaml:"log"`
	// Gateway configures the enforcement gateway (reverse proxy and
	// forward-auth). It is started when gateway.listen is set.
	Gateway gateway.Config `yaml:"gateway"`
	// Identity lists the trusted token issuers.
	Identity identity.Config `yaml:"identity"`
	// Routing maps HTTP requests to Cedar actions and resources.
	Routing route.Config `yaml:"routing"`
	// State configures the signal journal and live state (embedded NATS
	// JetStream under data_dir by default, or an external nats_url).
	State state.Config `yaml:"state"`
	// Cluster configures how replicas stay consistent and how stale a
	// replica may be before it fails closed (it applies to a single
	// embedded node too).
	Cluster replica.Config `yaml:"cluster"`
	// Signals lists the SSF transmitters signals are received from (push
	// to /ssf/push on the main listener, or polled).
	Signals signal.Config `yaml:"signals"`
	// Risk configures the behaviour risk engine (detectors fed by the
	// gateway; see docs/risk.md). It runs with the gateway unless
	// risk.enabled is false.
	Risk risk.Config `yaml:"risk"`
	// DataDir holds durable state (saved policy versions, the signal
	// journal, the generated admin token).
	DataDir string `yaml:"data_dir"`

	// File is the path the config was loaded from ("" for defaults).
	File string `yaml:"-"`
}

// Server configures the listeners.
type Server struct {
	// Addr is the main listener: AuthZEN, forward-auth, the gateway and
	// /healthz, /readyz.
	Addr string `yaml:"addr"`
	// AdminAddr is the admin listener: the admin API, /metrics, /healthz,
	// /readyz. Keep it on loopback or a private network.
	AdminAddr string `yaml:"admin_addr"`
	// ShutdownTimeout bounds how long in-flight requests are drained.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadHeaderTimeout protects against slow clients.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds request headers (431 beyond).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// Policies configures where policy sets come from.
type Policies struct {
	// Dir is a policy directory (*.cedar, *.cedarschema, *.entities.json).
	Dir string `yaml:"dir"`
	// Watch reloads Dir when files change (default true).
	Watch *bool `yaml:"watch"`
	// Debounce groups bursts of file events into one reload.
	Debounce time.Duration `yaml:"debounce"`
	// PollInterval rescans Dir as a fallback for file systems that miss
	// change events; 0 disables (default 5s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// History is how many versions are kept for rollback.
	History int `yaml:"history"`
}

// WatchEnabled reports whether the policy directory is watched.
func (p Policies) WatchEnabled() bool { return p.Watch == nil || *p.Watch }

// AuthZEN configures the AuthZEN decision API.
type AuthZEN struct {
	// Enabled serves the AuthZEN API on the main listener (default true).
	Enabled *bool `yaml:"enabled"`
	// Auth, when it lists keys, requires callers (PEPs) to authenticate.
	Auth APIAuth `yaml:"auth"`
	// Issuer, Limits and DisableExplain: see the authzen package.
	authzen.Config `yaml:",inline"`
}

// IsEnabled reports whether the AuthZEN API is served.
func (a AuthZEN) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// APIAuth lists the credentials accepted from callers. A caller presents a
// key as "Authorization: Bearer <key>", as the raw "Authorization: <key>"
// (what the AuthZEN interop harness sends) or as "X-API-Key: <key>".
type APIAuth struct {
	Keys []string `yaml:"keys"`
}

// Admin configures the admin API, which always requires authentication.
type Admin struct {
	// Keys are accepted admin credentials. When empty, Vigil generates one
	// at start and writes it to <data_dir>/admin.token (mode 0600).
	Keys []string `yaml:"keys"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	c := &Config{}
	c.SetDefaults()
	return c
}

// SetDefaults fills every unset field.
func (c *Config) SetDefaults() {
	s := &c.Server
	setDefault(&s.Addr, "127.0.0.1:8080")
	setDefault(&s.AdminAddr, "127.0.0.1:8081")
	setDefault(&s.ShutdownTimeout, 15*time.Second)
	setDefault(&s.ReadHeaderTimeout, 10*time.Second)
	setDefault(&s.ReadTimeout, 60*time.Second)
	setDefault(&s.IdleTimeout, 120*time.Second)
	setDefault(&s.MaxHeaderBytes, 64<<10)
	p := &c.Policies
	setDefault(&p.Debounce, 200*time.Millisecond)
	setDefault(&p.PollInterval, 5*time.Second)
	setDefault(&p.History, 20)
	c.AuthZEN.Config.SetDefaults()
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "text")
	setDefault(&c.DataDir, "./vigil-data")
	c.State.SetDefaults()
	c.Cluster.SetDefaults()
	c.Signals.SetDefaults()
	c.Risk.SetDefaults()
	if c.GatewayEnabled() {
		c.Gateway.SetDefaults()
		c.Identity.SetDefaults()
		c.Routing.SetDefaults()
	}
}

// EffectiveState is the state section with derived values: without
// nats_url, the embedded journal lives in <data_dir>/journal unless
// state.data_dir says otherwise.
func (c *Config) EffectiveState() state.Config {
	st := c.State
	if st.NATSURL == "" && st.DataDir == "" {
		st.DataDir = filepath.Join(c.DataDir, "journal")
	}
	return st
}

// GatewayEnabled reports whether the gateway is configured.
func (c *Config) GatewayEnabled() bool { return c.Gateway.Listen != "" }

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Validate checks the whole configuration and returns every problem, each
// naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(key, v string) {
		if _, _, err := net.SplitHostPort(v); err != nil {
			bad(key, "%q is not HOST:PORT (%v)", v, err)
		}
	}
	checkAddr("server.addr", c.Server.Addr)
	checkAddr("server.admin_addr", c.Server.AdminAddr)
	if c.Server.Addr == c.Server.AdminAddr && !strings.HasSuffix(c.Server.Addr, ":0") {
		bad("server.admin_addr", "must differ from server.addr (%s)", c.Server.Addr)
	}
	for key, d := range map[string]time.Duration{
		"server.shutdown_timeout": c.Server.ShutdownTimeout, "server.read_header_timeout": c.Server.ReadHeaderTimeout,
		"server.read_timeout": c.Server.ReadTimeout, "server.idle_timeout": c.Server.IdleTimeout,
		"policies.debounce": c.Policies.Debounce, "policies.poll_interval": c.Policies.PollInterval,
	} {
		if d < 0 {
			bad(key, "must not be negative")
		}
	}
	if c.Server.MaxHeaderBytes < 1024 || c.Server.MaxHeaderBytes > 1<<20 {
		bad("server.max_header_bytes", "must be between 1024 and 1048576, got %d", c.Server.MaxHeaderBytes)
	}
	if c.Policies.History < 1 || c.Policies.History > 1000 {
		bad("policies.history", "must be between 1 and 1000, got %d", c.Policies.History)
	}
	if err := c.AuthZEN.Config.Validate(); err != nil {
		for _, e := range flattenErrs(err) {
			errs = append(errs, fmt.Errorf("authzen.%w", e))
		}
	}
	checkKeys := func(key string, keys []string) {
		for i, k := range keys {
			if len(k) < 16 {
				bad(fmt.Sprintf("%s[%d]", key, i), "is %d characters; use at least 16 random characters (e.g. `openssl rand -hex 24`)", len(k))
			}
		}
	}
	checkKeys("authzen.auth.keys", c.AuthZEN.Auth.Keys)
	checkKeys("admin.keys", c.Admin.Keys)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "%q is not one of json, text", c.Log.Format)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if err := c.Signals.Validate(); err != nil {
		for _, e := range flattenErrs(err) {
			errs = append(errs, fmt.Errorf("signals.%w", e))
		}
	}
	st := c.EffectiveState()
	if err := st.Validate(); err != nil {
		for _, e := range flattenErrs(err) {
			errs = append(errs, fmt.Errorf("state.%w", e))
		}
	}
	if err := c.Risk.Validate(); err != nil {
		for _, e := range flattenErrs(err) {
			errs = append(errs, fmt.Errorf("risk.%w", e))
		}
	}
	if err := c.Cluster.Validate(); err != nil {
		for _, e := range flattenErrs(err) {
			errs = append(errs, fmt.Errorf("cluster.%w", e))
		}
	}
	if c.GatewayEnabled() {
		if !strings.HasSuffix(c.Gateway.Listen, ":0") && (c.Gateway.Listen == c.Server.Addr || c.Gateway.Listen == c.Server.AdminAddr) {
			bad("gateway.listen", "must differ from server.addr and server.admin_addr")
		}
		prefixed := func(prefix string, err error) {
			if err == nil {
				return
			}
			for _, e := range flattenErrs(err) {
				errs = append(errs, fmt.Errorf("%s.%w", prefix, e))
			}
		}
		prefixed("gateway", c.Gateway.Validate())
		prefixed("identity", c.Identity.Validate())
		prefixed("routing", c.Routing.Validate())
		if len(c.Routing.Routes) == 0 && c.Routing.OpenAPI == "" {
			bad("routing.routes", "the gateway needs at least one route (or routing.openapi)")
		}
		names := map[string]bool{}
		for _, u := range c.Gateway.Upstreams {
			names[u.Name] = true
		}
		for i, r := range c.Routing.Routes {
			if r.Upstream != "" && !names[r.Upstream] {
				bad(fmt.Sprintf("routing.routes[%d].upstream", i), "%q is not the name of a gateway.upstreams entry", r.Upstream)
			}
		}
	}
	return errors.Join(errs...)
}

// Load reads, expands, strictly decodes, defaults and validates a
// configuration file. Errors name the file and, where possible, the key
// and line.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.File = path
	// Relative file references are relative to the config file.
	base := filepath.Dir(path)
	for _, p := range []*string{&c.Policies.Dir, &c.Routing.OpenAPI, &c.Gateway.GeoIP, &c.Risk.Outbound.SigningKey} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	return c, nil
}

// Parse decodes a configuration document. lookup resolves ${ENV}
// references.
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config is %d bytes; at most %d are allowed", len(data), MaxFileBytes)
	}
	expanded, err := Expand(string(data), lookup)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	if strings.TrimSpace(expanded) != "" {
		if err := yaml.UnmarshalWithOptions([]byte(expanded), c, yaml.DisallowUnknownField()); err != nil {
			return nil, errors.New(yaml.FormatError(err, false, true))
		}
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func flattenErrs(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrs(e)...)
		}
		return out
	}
	return []error{err}
}

var envRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// Expand substitutes ${NAME} and ${NAME:-default} in s; "$$" stands for a
// literal "$". A reference to an unset variable without a default is an
// error, so that a missing secret is never silently empty. Substitution is
// textual and happens before YAML parsing: quote values that may contain
// YAML syntax.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	out := envRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := envRE.FindStringSubmatch(m)
		if v, ok := lookup(sub[1]); ok {
			return v
		}
		if sub[2] != "" {
			return sub[3]
		}
		missing = append(missing, sub[1])
		return ""
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set (referenced as ${%s}; use ${%s:-default} for an optional value)", missing[0], missing[0], missing[0])
	}
	return out, nil
}
