package state

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config configures the signal journal and live state.
//
//	data_dir: /var/lib/vigil      # embedded NATS JetStream files (when nats_url is empty)
//	nats_url: ""                  # e.g. nats://nats-1:4222,nats://nats-2:4222 to share state
//	nats:
//	  creds_file: /etc/vigil/nats.creds   # or user+password, or token
//	  tls: {ca_file: ..., cert_file: ..., key_file: ...}
//	retention: 48h                # keep revocations this long: at least the longest token lifetime
//	max_subjects: 1000000         # tracked index keys before Publish refuses new ones
//	dedupe_window: 1h             # journal deduplication of signal IDs
//	max_bytes: 1GiB               # journal size; when full, Publish fails (nothing is dropped)
//	replicas: 1                   # stream replicas on an external cluster
type Config struct {
	// DataDir holds the embedded NATS server's JetStream storage. Required
	// when NATSURL is empty.
	DataDir string `yaml:"data_dir"`
	// NATSURL connects to an external NATS server or cluster instead of
	// running one in-process. Comma-separated URLs are allowed.
	NATSURL string `yaml:"nats_url"`
	// NATS holds credentials and TLS settings for NATSURL.
	NATS NATSConfig `yaml:"nats"`
	// Retention is how long transient signals (revocations, claim changes,
	// assurance changes) are kept: at least the longest token lifetime.
	// Default 48h.
	Retention time.Duration `yaml:"retention"`
	// MaxSubjects caps the tracked index keys (one per subject identifier,
	// session, token or device named by a signal). When the cap is reached
	// Publish refuses signals for new keys with ErrCapacity (the push
	// receiver answers 503 and the transmitter retries); signals already
	// acknowledged are never dropped. Default 1,000,000.
	MaxSubjects int `yaml:"max_subjects"`
	// DedupeWindow is how long the journal remembers signal IDs to drop
	// duplicates. Later duplicates are journalled again but applying a
	// signal twice has no further effect. Default 1h.
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// MaxBytes caps the journal's size. When full, Publish fails rather
	// than discarding acknowledged signals. Default 1 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// Replicas is the journal stream's replica count on an external
	// cluster. Default 1; must be 1 for the embedded server.
	Replicas int `yaml:"replicas"`
}

// NATSConfig holds credentials and TLS for an external NATS server. Use at
// most one of CredsFile, User/Password and Token.
type NATSConfig struct {
	CredsFile string    `yaml:"creds_file"`
	User      string    `yaml:"user"`
	Password  string    `yaml:"password"`
	Token     string    `yaml:"token"`
	TLS       TLSConfig `yaml:"tls"`
}

// TLSConfig holds TLS files for the NATS connection.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Defaults.
const (
	DefaultRetention    = 48 * time.Hour
	DefaultMaxSubjects  = 1_000_000
	DefaultDedupeWindow = time.Hour
	DefaultMaxBytes     = 1 << 30
)

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.MaxSubjects == 0 {
		c.MaxSubjects = DefaultMaxSubjects
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
}

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.NATSURL == "" {
		if c.DataDir == "" {
			add("data_dir: required when nats_url is empty (the embedded NATS server stores the journal there)")
		}
		if c.Replicas > 1 {
			add("replicas: %d needs an external cluster (nats_url)", c.Replicas)
		}
		if c.NATS != (NATSConfig{}) {
			add("nats: credentials and TLS apply only with nats_url")
		}
	} else {
		for _, u := range strings.Split(c.NATSURL, ",") {
			pu, err := url.Parse(strings.TrimSpace(u))
			if err != nil || pu.Host == "" {
				add("nats_url: %q is not a URL like nats://host:4222", u)
				continue
			}
			switch pu.Scheme {
			case "nats", "tls", "ws", "wss":
			default:
				add("nats_url: scheme %q is not nats, tls, ws or wss", pu.Scheme)
			}
		}
		n := 0
		if c.NATS.CredsFile != "" {
			n++
		}
		if c.NATS.User != "" || c.NATS.Password != "" {
			n++
			if c.NATS.User == "" || c.NATS.Password == "" {
				add("nats.user, nats.password: set both or neither")
			}
		}
		if c.NATS.Token != "" {
			n++
		}
		if n > 1 {
			add("nats: use one of creds_file, user/password and token")
		}
		if (c.NATS.TLS.CertFile == "") != (c.NATS.TLS.KeyFile == "") {
			add("nats.tls.cert_file, nats.tls.key_file: set both or neither")
		}
	}
	if c.Retention < time.Minute {
		add("retention: %s is shorter than 1m; it must cover the longest token lifetime", c.Retention)
	}
	if c.MaxSubjects < 1 {
		add("max_subjects: must be at least 1")
	}
	if c.DedupeWindow < time.Second || c.DedupeWindow > c.Retention {
		add("dedupe_window: %s must be between 1s and retention (%s)", c.DedupeWindow, c.Retention)
	}
	if c.MaxBytes < 1<<20 && c.MaxBytes != -1 {
		add("max_bytes: must be at least 1 MiB (or -1 for unlimited)")
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		add("replicas: must be 1-5")
	}
	return errors.Join(errs...)
}
