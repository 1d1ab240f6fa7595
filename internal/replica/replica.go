package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/state"
)

// ErrUnavailable means the policy log could not record or confirm an
// activation; retry later (the admin API answers 503).
var ErrUnavailable = errors.New("policy log unavailable")

// StateLog is what a Replica needs from the live-state store: its
// JetStream connection, the sequence its snapshot has applied, and a way
// to wait for a sequence. *state.Store implements it.
type StateLog interface {
	JetStream() jetstream.JetStream
	Seq() uint64
	WaitFor(ctx context.Context, seq uint64) error
}

var (
	_ StateLog         = (*state.Store)(nil)
	_ engine.Freshness = (*Replica)(nil)
)

// Options are the dependencies of a Replica.
type Options struct {
	// Config is the cluster section; Open applies SetDefaults to a copy.
	Config Config
	// State is the live-state store, already open.
	State StateLog
	// Policies is the local policy store activations are applied to.
	Policies *policy.Store
	// Replicas is the stream replica count on an external cluster
	// (state.replicas); 1 for the embedded server.
	Replicas int
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
}

// Replica is this process's membership in a Vigil cluster: it publishes and
// follows policy activations and proves how fresh its state is. It
// implements engine.Freshness. All methods are safe for concurrent use.
type Replica struct {
	cfg      Config
	name     string
	log      *slog.Logger
	state    StateLog
	policies *policy.Store
	js       jetstream.JetStream
	signals  jetstream.Stream
	plog     *policyLog

	epoch time.Time
	// provenAt is when (nanoseconds after epoch, plus one) the latest
	// probe that this replica has caught up with was sent; 0 = never.
	provenAt      atomic.Int64
	pending       atomic.Pointer[proof]
	clusterState  atomic.Uint64
	clusterPolicy atomic.Uint64
	probeErr      atomic.Pointer[string]
	// probes counts successful probes since Open (see Ready).
	probes atomic.Int64
	// replicated: the streams have more than one replica (a cluster).
	replicated bool
	fresh      atomic.Bool

	mu      sync.Mutex
	freshCh chan struct{} // closed when fresh flips

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// proof is a probe's answer: the sequences the cluster held when the probe
// was sent at time at.
type proof struct {
	at            int64
	state, policy uint64
}

// Open starts following the policy log and probing the cluster. The state
// store must be open; the policy store may be empty.
func Open(ctx context.Context, o Options) (*Replica, error) {
	cfg := o.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	if o.State == nil || o.Policies == nil {
		return nil, errors.New("replica: Options.State and Options.Policies are required")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := cfg.Name
	if name == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			name = h
		} else {
			name = "vigil"
		}
	}
	replicas := max(o.Replicas, 1)
	js := o.State.JetStream()
	// Short attempts, retried: right after a cluster starts or elects a
	// new JetStream leader, a single API request can go unanswered until
	// its deadline.
	signals, err := ensure(ctx, log, state.StreamName, func(ctx context.Context) (jetstream.Stream, error) {
		return js.Stream(ctx, state.StreamName)
	})
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", state.StreamName, err)
	}
	plog, err := openPolicyLog(ctx, js, o.Policies, replicas, log)
	if err != nil {
		return nil, err
	}
	r := &Replica{
		cfg: cfg, name: name, log: log, state: o.State, policies: o.Policies,
		js: js, signals: signals, plog: plog,
		epoch:      time.Now(),
		replicated: replicas > 1,
		freshCh:    make(chan struct{}),
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	if err := plog.start(runCtx, &r.wg); err != nil {
		cancel()
		r.wg.Wait()
		return nil, err
	}
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.probeLoop(runCtx) }()
	go func() { defer r.wg.Done(); r.collectLoop(runCtx) }()
	log.Info("replica following the policy log", "replica", name, "max_staleness", cfg.MaxStaleness.String(),
		"probe_interval", cfg.probeInterval().String())
	return r, nil
}

// Name returns the replica's name.
func (r *Replica) Name() string { return r.name }

// Close stops following and probing. It is safe to call more than once.
func (r *Replica) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
	})
	return nil
}

// WaitReplayed blocks until the policy log has been replayed (its latest
// activation applied, or found not applicable) or ctx is done.
func (r *Replica) WaitReplayed(ctx context.Context) error {
	select {
	case <-r.plog.replayed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the policy log replay: %w", ctx.Err())
	}
}

// WaitFresh blocks until the replica has proven it is fresh (see Stale) or
// ctx is done, and returns the last Stale error then.
func (r *Replica) WaitFresh(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		err := r.Stale()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}

// Ready reports nil once the policy log is replayed and the replica has
// proven it is fresh; a restarted replica catches up before it is ready.
func (r *Replica) Ready() error {
	if !r.plog.isReplayed() {
		return errors.New("replaying the policy log")
	}
	// A stream leader elected moments ago (a NATS node just restarted) can
	// answer with a last sequence it has not applied yet; a second probe, a
	// probe interval later, must confirm before a (re)started replica says
	// it is ready.
	if r.replicated && r.probes.Load() < 2 {
		return errors.New("confirming with the cluster that this replica has caught up")
	}
	return r.Stale()
}

// PolicySeq returns the sequence of the last policy activation applied.
func (r *Replica) PolicySeq() uint64 { return r.plog.Applied() }

// StateSeq returns the live-state journal sequence applied.
func (r *Replica) StateSeq() uint64 { return r.state.Seq() }

// since is the monotonic time since Open, plus one so that zero means
// "never".
func (r *Replica) since() int64 { return int64(time.Since(r.epoch)) + 1 }

// Stale implements engine.Freshness: nil while the replica's last proof of
// freshness is younger than max_staleness.
func (r *Replica) Stale() error {
	r.settle()
	at := r.provenAt.Load()
	if at != 0 && r.since()-at <= int64(r.cfg.MaxStaleness) {
		return nil
	}
	return r.staleError(at)
}

func (r *Replica) staleError(at int64) error {
	var why string
	probeErr, failure := r.probeErr.Load(), r.plog.failure()
	switch {
	case probeErr != nil:
		why = "cannot reach the cluster: " + *probeErr
	case failure != "":
		why = failure
	default:
		why = fmt.Sprintf("behind the cluster: signals %d of %d, policies %d of %d",
			r.state.Seq(), r.clusterState.Load(), r.plog.Applied(), r.clusterPolicy.Load())
	}
	if at == 0 {
		return fmt.Errorf("%w: not yet caught up with the cluster (%s)", engine.ErrStale, why)
	}
	age := time.Duration(r.since() - at).Round(time.Millisecond)
	return fmt.Errorf("%w: last confirmed up to date %s ago, more than cluster.max_staleness (%s); %s",
		engine.ErrStale, age, r.cfg.MaxStaleness, why)
}

// settle turns the latest probe into a proof once both logs have reached
// the sequences it reported.
func (r *Replica) settle() {
	p := r.pending.Load()
	if p == nil || r.state.Seq() < p.state || r.plog.Applied() < p.policy {
		return
	}
	for {
		old := r.provenAt.Load()
		if p.at <= old || r.provenAt.CompareAndSwap(old, p.at) {
			break
		}
	}
	r.pending.CompareAndSwap(p, nil)
}

func (r *Replica) probeTimeout() time.Duration {
	return min(max(5*r.cfg.probeInterval(), 500*time.Millisecond), r.cfg.MaxStaleness)
}

func (r *Replica) probeLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.probeInterval())
	defer t.Stop()
	for {
		r.probe(ctx)
		r.noteFreshness()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.js.Conn().IsClosed() {
			// The state store closed the connection without closing us.
			r.cancel()
			return
		}
	}
}

// probe asks both stream leaders for their last sequence.
func (r *Replica) probe(ctx context.Context) {
	sent := r.since()
	pctx, cancel := context.WithTimeout(ctx, r.probeTimeout())
	defer cancel()
	st, err := target(pctx, r.signals, state.SubjectPrefix+">", r.state.Seq)
	var pt uint64
	if err == nil {
		pt, err = target(pctx, r.plog.strm, PolicySubject, r.plog.Applied)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		msg := err.Error()
		if old := r.probeErr.Swap(&msg); old == nil {
			r.log.Warn("cannot confirm freshness with the cluster", "replica", r.name, "err", err)
		}
		return
	}
	if r.probeErr.Swap(nil) != nil {
		r.log.Info("cluster reachable again", "replica", r.name)
	}
	r.clusterState.Store(st)
	r.clusterPolicy.Store(pt)
	r.pending.Store(&proof{at: sent, state: st, policy: pt})
	r.probes.Add(1)
	r.settle()
}

// target returns the sequence a follower must have applied to reflect
// every record the stream held when asked: its last sequence, or, when
// every record after what the follower applied was deleted (superseded or
// expired journal records are), what it applied.
func target(ctx context.Context, strm jetstream.Stream, subject string, applied func() uint64) (uint64, error) {
	info, err := strm.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	last := info.State.LastSeq
	a := applied()
	if a >= last {
		return last, nil
	}
	m, err := strm.GetMsg(ctx, a+1, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return a, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream message after %d: %w", a, err)
	}
	if m.Sequence > last {
		return a, nil
	}
	return last, nil
}

// noteFreshness logs and signals a change between fresh and stale.
func (r *Replica) noteFreshness() {
	err := r.Stale()
	fresh := err == nil
	if r.fresh.Swap(fresh) == fresh {
		return
	}
	if fresh {
		r.log.Info("replica is fresh; serving decisions", "replica", r.name,
			"state_seq", r.state.Seq(), "policy_seq", r.plog.Applied())
	} else {
		r.log.Warn("replica is stale; failing closed until it has caught up", "replica", r.name, "err", err)
	}
	r.mu.Lock()
	close(r.freshCh)
	r.freshCh = make(chan struct{})
	r.mu.Unlock()
}

// FreshnessChanged returns a channel closed when the replica turns stale or
// fresh again (long-lived requests are re-decided then).
func (r *Replica) FreshnessChanged() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.freshCh
}

// Await implements engine.Freshness: it waits, at most cluster.max_wait,
// until both logs have reached c.
func (r *Replica) Await(ctx context.Context, c engine.Consistency) error {
	if r.state.Seq() >= c.StateSeq && r.plog.Applied() >= c.PolicySeq {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.MaxWait)
	defer cancel()
	if c.StateSeq > r.state.Seq() {
		if err := r.state.WaitFor(ctx, c.StateSeq); err != nil {
			return fmt.Errorf("%w: live state is at seq %d, the request needs %d (%s waits at most %s)",
				engine.ErrBehind, r.state.Seq(), c.StateSeq, engine.HeaderMinSeq, r.cfg.MaxWait)
		}
	}
	if c.PolicySeq > r.plog.Applied() {
		if err := r.plog.WaitFor(ctx, c.PolicySeq); err != nil {
			return fmt.Errorf("%w: policies are at seq %d, the request needs %d (%s waits at most %s)",
				engine.ErrBehind, r.plog.Applied(), c.PolicySeq, engine.HeaderMinPolicySeq, r.cfg.MaxWait)
		}
	}
	return nil
}

// Activate validates a bundle and publishes it as the active version for
// every replica. It returns once this replica has applied it, with the
// version, whether it differs from the version active before, and the
// policy sequence to pass as X-Vigil-Min-Policy-Seq. A bundle identical
// to the active version is not published. A bundle that does not compile
// is recorded as rejected and its *policy.CompileError returned; nothing
// is published.
func (r *Replica) Activate(ctx context.Context, b policy.Bundle, source string) (*policy.Version, bool, uint64, error) {
	id := b.Hash()
	if cur := r.policies.Active(); cur != nil && cur.ID == id {
		return cur, false, r.plog.Applied(), nil
	}
	if _, err := policy.Compile(b); err != nil {
		r.policies.Reject(source, err)
		var ce *policy.CompileError
		if !errors.As(err, &ce) {
			err = &policy.CompileError{Problems: []policy.Problem{{Message: err.Error()}}}
		}
		return nil, false, 0, err
	}
	return r.publish(ctx, id, b, source)
}

// PublishDir publishes a policy directory's bundle unless it is the
// version the latest directory activation in the log already recorded: a
// replica restarting with an unchanged directory does not undo pushes made
// since. The bundle must have compiled (the directory watcher compiles it).
func (r *Replica) PublishDir(ctx context.Context, b policy.Bundle, source string) (*policy.Version, bool, uint64, error) {
	id := b.Hash()
	if r.plog.lastDirVersion() == id {
		return r.policies.Active(), false, r.plog.Applied(), nil
	}
	return r.publish(ctx, id, b, source)
}

// Rollback publishes an earlier version as the active one. The version
// must be in this replica's history or in the bundle store; otherwise the
// error wraps policy.ErrUnknownVersion.
func (r *Replica) Rollback(ctx context.Context, id string) (*policy.Version, bool, uint64, error) {
	var b policy.Bundle
	found := false
	for _, v := range r.policies.History() {
		if v.ID == id {
			b, found = v.Snapshot.Bundle, true
			break
		}
	}
	if !found {
		if !validVersion(id) {
			return nil, false, 0, fmt.Errorf("rollback to %q: %w", id, policy.ErrUnknownVersion)
		}
		var err error
		if b, err = r.plog.bundle(ctx, id); err != nil {
			if errors.Is(err, policy.ErrUnknownVersion) {
				return nil, false, 0, fmt.Errorf("rollback to %q: %w", id, policy.ErrUnknownVersion)
			}
			return nil, false, 0, fmt.Errorf("%w: rollback to %q: %w", ErrUnavailable, id, err)
		}
	}
	return r.publish(ctx, id, b, sourceRollback)
}

func (r *Replica) publish(ctx context.Context, id string, b policy.Bundle, source string) (*policy.Version, bool, uint64, error) {
	before := r.policies.Active()
	r.plog.remember(id, b)
	seq, err := r.plog.record(ctx, id, b, source, r.name)
	if err != nil {
		return nil, false, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := r.plog.WaitFor(ctx, seq); err != nil {
		return nil, false, seq, fmt.Errorf("%w: activation %d is recorded and will apply, but not yet on this replica: %w", ErrUnavailable, seq, err)
	}
	v := r.policies.Active()
	if v == nil || v.ID != id {
		v = nil
		for _, h := range r.policies.History() {
			if h.ID == id {
				v = h
				break
			}
		}
	}
	if v == nil {
		return nil, false, seq, fmt.Errorf("%w: activation %d was superseded before this replica applied it", ErrUnavailable, seq)
	}
	changed := before == nil || before.ID != id
	return v, changed, seq, nil
}

// collectLoop removes unreferenced bundles now and then.
func (r *Replica) collectLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			n, err := r.plog.collect(cctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				r.log.Debug("collect unreferenced policy bundles", "err", err)
			} else if n > 0 {
				r.log.Info("deleted unreferenced policy bundles", "count", n)
			}
		}
	}
}

// Status is this replica's replication state, as /readyz reports it.
type Status struct {
	Name  string `json:"name"`
	Fresh bool   `json:"fresh"`
	// StateSeq and PolicySeq are the sequences applied here.
	StateSeq  uint64 `json:"state_seq"`
	PolicySeq uint64 `json:"policy_seq"`
	// StateLag and PolicyLag are how many sequences the cluster held beyond
	// them at the latest probe.
	StateLag  uint64 `json:"state_lag"`
	PolicyLag uint64 `json:"policy_lag"`
	// StalenessMS is the age of the latest proof of freshness in
	// milliseconds, -1 before the first.
	StalenessMS int64 `json:"staleness_ms"`
	// Connected reports the NATS connection.
	Connected bool `json:"connected"`
	// Reason says why the replica is stale.
	Reason string `json:"reason,omitempty"`
}

// Status reports the replication state.
func (r *Replica) Status() Status {
	err := r.Stale()
	s := Status{
		Name:        r.name,
		Fresh:       err == nil,
		StateSeq:    r.state.Seq(),
		PolicySeq:   r.plog.Applied(),
		StalenessMS: -1,
		Connected:   r.js.Conn().Status() == nats.CONNECTED,
	}
	if cs := r.clusterState.Load(); cs > s.StateSeq {
		s.StateLag = cs - s.StateSeq
	}
	if cp := r.clusterPolicy.Load(); cp > s.PolicySeq {
		s.PolicyLag = cp - s.PolicySeq
	}
	if at := r.provenAt.Load(); at != 0 {
		s.StalenessMS = time.Duration(r.since() - at).Milliseconds()
	}
	if err != nil {
		s.Reason = err.Error()
	}
	return s
}
