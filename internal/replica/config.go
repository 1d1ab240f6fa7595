package replica

import (
	"errors"
	"fmt"
	"time"
)

// Config is the cluster section of vigil.yaml. It applies to the embedded
// single-node setup too, which is a cluster of one.
//
//	cluster:
//	  name: vigil-1          # this replica in logs and activation records (default: host name)
//	  max_staleness: 15s     # fail closed when freshness cannot be proven for this long
//	  max_wait: 1s           # how long a request with X-Vigil-Min-Seq may wait
type Config struct {
	// Name identifies this replica in logs, /readyz and the activation
	// records it publishes. Default: the host name.
	Name string `yaml:"name"`
	// MaxStaleness bounds how old this replica's last proof of freshness
	// may be: a replica that has not been able to confirm with the cluster
	// that it has applied everything (cut off from NATS, or knowingly
	// behind) for longer than this fails closed (503) until it has caught
	// up. Within the bound it keeps serving from its last state. Default
	// 15s: longer than the measured NATS failover (see docs/scale-out.md).
	MaxStaleness time.Duration `yaml:"max_staleness"`
	// MaxWait bounds how long a decision request carrying X-Vigil-Min-Seq
	// or X-Vigil-Min-Policy-Seq waits for this replica to reach the
	// sequence before it is answered 503. Default 1s.
	MaxWait time.Duration `yaml:"max_wait"`
}

// Defaults.
const (
	DefaultMaxStaleness = 15 * time.Second
	DefaultMaxWait      = time.Second
)

// SetDefaults fills unset fields (the name is resolved by Open).
func (c *Config) SetDefaults() {
	if c.MaxStaleness == 0 {
		c.MaxStaleness = DefaultMaxStaleness
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
}

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxStaleness < 100*time.Millisecond || c.MaxStaleness > 24*time.Hour {
		errs = append(errs, fmt.Errorf("max_staleness: %s must be between 100ms and 24h", c.MaxStaleness))
	}
	if c.MaxWait < time.Millisecond || c.MaxWait > time.Minute {
		errs = append(errs, fmt.Errorf("max_wait: %s must be between 1ms and 1m", c.MaxWait))
	}
	if len(c.Name) > 128 {
		errs = append(errs, errors.New("name: at most 128 characters"))
	}
	return errors.Join(errs...)
}

// probeInterval is how often the cluster is asked for its latest
// sequences: often enough that a healthy replica's proof is always much
// younger than max_staleness, rarely enough to cost nothing (two small
// JetStream API requests per probe).
func (c *Config) probeInterval() time.Duration {
	return min(max(c.MaxStaleness/10, 10*time.Millisecond), time.Second)
}
