package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Read-your-writes request headers. A caller that made a change through
// the admin API (a signal answered with "seq", a policy push answered with
// "policy_seq") sends the sequence back on its next decision requests; the
// replica that receives them waits, briefly, until it has applied that
// sequence, and answers 503 if it cannot.
const (
	HeaderMinSeq       = "X-Vigil-Min-Seq"
	HeaderMinPolicySeq = "X-Vigil-Min-Policy-Seq"
)

// Errors the enforcement surfaces branch on.
var (
	// ErrStale means this replica cannot prove that its state is fresh
	// within the configured bound (cluster.max_staleness): it is cut off
	// from the cluster or knows it is behind. Surfaces answer 503.
	ErrStale = errors.New("this replica cannot prove its state is fresh")
	// ErrBehind means the replica did not reach a requested minimum
	// sequence within the wait bound (cluster.max_wait). Surfaces answer
	// 503; another replica, or a retry, may answer.
	ErrBehind = errors.New("this replica has not reached the requested sequence")
	// ErrBadConsistency means a minimum-sequence header is malformed.
	// Surfaces answer 400.
	ErrBadConsistency = errors.New("invalid minimum-sequence header")
)

// Consistency is the least a decision must reflect: the live-state journal
// sequence and the policy activation sequence. Zero fields ask for nothing.
type Consistency struct {
	StateSeq  uint64
	PolicySeq uint64
}

// IsZero reports whether c asks for nothing.
func (c Consistency) IsZero() bool { return c.StateSeq == 0 && c.PolicySeq == 0 }

// ConsistencyFrom reads the read-your-writes headers of a request. Absent
// headers ask for nothing; a malformed one is an ErrBadConsistency.
func ConsistencyFrom(h http.Header) (Consistency, error) {
	var c Consistency
	var err error
	if c.StateSeq, err = seqHeader(h, HeaderMinSeq); err != nil {
		return Consistency{}, err
	}
	if c.PolicySeq, err = seqHeader(h, HeaderMinPolicySeq); err != nil {
		return Consistency{}, err
	}
	return c, nil
}

func seqHeader(h http.Header, name string) (uint64, error) {
	vs := h[name] // name is canonical: no allocation on the hot path
	switch len(vs) {
	case 0:
		return 0, nil
	case 1:
	default:
		return 0, fmt.Errorf("%w: send %s once", ErrBadConsistency, name)
	}
	v := vs[0]
	if len(v) == 0 || len(v) > 20 || v[0] == '+' || v[0] == '-' {
		return 0, fmt.Errorf("%w: %s must be a sequence number from a Vigil admin API response", ErrBadConsistency, name)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s must be a sequence number from a Vigil admin API response", ErrBadConsistency, name)
	}
	return n, nil
}

// Freshness is what the engine needs from replication: how fresh this
// replica is and a way to wait for a sequence. internal/replica implements
// it.
type Freshness interface {
	// Stale returns nil while this replica can prove that its state is
	// fresh within the configured bound, and an error wrapping ErrStale
	// saying why not otherwise. It is called on every decision and must be
	// cheap.
	Stale() error
	// PolicySeq returns the sequence of the last policy activation applied.
	PolicySeq() uint64
	// Await blocks until the replica has applied c, ctx is done or the
	// configured wait bound passes; it returns an error wrapping ErrBehind
	// in the last two cases.
	Await(ctx context.Context, c Consistency) error
}

// Await waits until a View would reflect c (see Freshness.Await). Without
// Freshness it does not wait; View.Reflects then says whether c is met.
func (e *Engine) Await(ctx context.Context, c Consistency) error {
	if e.Freshness == nil || c.IsZero() {
		return nil
	}
	return e.Freshness.Await(ctx, c)
}

// Reflects reports whether the view includes every change up to c.
func (v View) Reflects(c Consistency) bool {
	return v.StateSeq() >= c.StateSeq && v.PolicySeq >= c.PolicySeq
}
