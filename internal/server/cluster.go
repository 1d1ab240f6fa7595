package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/replica"
	"github.com/vigil-authz/vigil/internal/state"
)

// Start-up bounds for joining the cluster.
const (
	// openStateFor bounds how long an external NATS is waited for at start.
	openStateFor = time.Minute
	// joinTimeout bounds creating the policy log and replaying it.
	joinTimeout = time.Minute
	// publishTimeout bounds publishing one policy directory change.
	publishTimeout = 30 * time.Second
	// freshAtStart bounds how long New waits for the first proof of
	// freshness.
	freshAtStart = 10 * time.Second
)

// openState opens the live state. Against an external cluster it retries
// for up to openStateFor, each attempt with a short deadline: replicas
// starting together race to create the journal stream (a request can then
// go unanswered until the stream has a leader), and NATS may still be
// starting.
func openState(ctx context.Context, cfg state.Config, log *slog.Logger) (*state.Store, error) {
	if cfg.NATSURL == "" {
		return state.Open(ctx, cfg, log)
	}
	deadline := time.Now().Add(openStateFor)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := state.Open(actx, cfg, log)
		cancel()
		if err == nil {
			return st, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		log.Warn("cannot open the signal journal yet; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(min(time.Duration(attempt)*200*time.Millisecond, 2*time.Second)):
		}
	}
}

// setupCluster joins the replication: policy activations go through the
// replicated policy log (on the embedded server too: a cluster of one),
// every view carries this replica's freshness, and the replica is not
// ready until it has caught up with the cluster.
func (s *Server) setupCluster(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	r, err := replica.Open(ctx, replica.Options{
		Config:   s.cfg.Cluster,
		State:    s.state,
		Policies: s.store,
		Replicas: s.cfg.EffectiveState().Replicas,
		Log:      s.log.With("component", "replica"),
	})
	if err != nil {
		return fmt.Errorf("join the cluster: %w", err)
	}
	s.replica = r
	s.engine.Freshness = r
	s.dirs = &dirPublisher{s: s, wake: make(chan struct{}, 1)}
	if err := s.metrics.Registry.Register(r.Collector()); err != nil {
		r.Close()
		return fmt.Errorf("register replica metrics: %w", err)
	}
	s.AddReadyCheck(r.Ready)
	s.AddCloser(func(context.Context) error { return r.Close() })
	// A replica that turns stale cuts its long-lived requests; one that is
	// fresh again re-decides them.
	s.AddRunner(func(ctx context.Context) error {
		for {
			ch := r.FreshnessChanged()
			select {
			case <-ctx.Done():
				return nil
			case <-ch:
				if s.gateway != nil {
					s.gateway.Reevaluate()
				}
			}
		}
	})
	s.AddRunner(s.dirs.run)
	return nil
}

// Replica returns this process's cluster membership.
func (s *Server) Replica() *replica.Replica { return s.replica }

// loadInitialPolicies waits until the policy log is replayed (a restarted
// replica comes back with the cluster's active version), then publishes
// the policy directory if it changed since the cluster last recorded it.
// Without a directory, a version saved by a run before the policy log
// existed is published if the log is empty.
func (s *Server) loadInitialPolicies() error {
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	if err := s.replica.WaitReplayed(ctx); err != nil {
		return err
	}
	// Usually immediate; a replica still replaying a long journal, or cut
	// off, starts anyway and becomes ready once it has caught up.
	defer func() {
		fctx, fcancel := context.WithTimeout(context.Background(), freshAtStart)
		defer fcancel()
		if err := s.replica.WaitFresh(fctx); err != nil {
			s.log.Warn("not yet caught up with the cluster; not ready until then", "err", err)
		}
	}()
	if v := s.store.Active(); v != nil {
		s.log.Info("policy version from the policy log", "version", v.ID, "source", v.Source, "policy_seq", s.replica.PolicySeq())
	}
	dir := s.cfg.Policies.Dir
	if dir == "" {
		if s.store.Active() != nil {
			return nil
		}
		s.log.Warn("no policy directory configured and no policy version in the log; not ready until one is pushed (POST /admin/v1/policies)")
		return nil
	}
	// The watcher compiles the directory into a staging store; changes
	// are published for every replica, this one included.
	source := "dir:" + dir
	staging := policy.NewStore(policy.StoreOptions{History: 1})
	s.watcher = &policy.Watcher{
		Dir: dir, Store: staging, Log: s.log.With("component", "policy"),
		Debounce: s.cfg.Policies.Debounce, Poll: s.cfg.Policies.PollInterval,
		OnReload: func(v *policy.Version, changed bool, err error) {
			s.recordReload("dir:", changed, err)
			switch {
			case err != nil:
				s.store.Reject(source, err)
			case changed:
				s.dirs.offer(v)
			}
		},
	}
	if _, _, err := s.watcher.Reload(); err != nil {
		// Not fatal: keep serving the log's version, if any, and pick up
		// a fixed directory.
		s.log.Error("policy directory has errors; the cluster's active version keeps serving", "dir", dir, "err", err)
		return nil
	}
	// Streams and buckets just created by replicas starting together may
	// take a moment to accept writes.
	pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
	defer pcancel()
	for !s.dirs.publishPending(pctx) {
		select {
		case <-pctx.Done():
			s.log.Error("policy directory not yet published to the cluster; retrying in the background", "dir", dir)
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// dirPublisher publishes policy directory changes to the cluster, the
// newest first, retrying until it succeeds: a change made while NATS is
// unreachable is published once it is back.
type dirPublisher struct {
	s    *Server
	wake chan struct{}

	mu   sync.Mutex
	next *policy.Version
}

// offer queues v, replacing an older unpublished version.
func (d *dirPublisher) offer(v *policy.Version) {
	d.mu.Lock()
	d.next = v
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// publishPending publishes the queued version and reports whether nothing
// is left to publish.
func (d *dirPublisher) publishPending(ctx context.Context) bool {
	d.mu.Lock()
	v := d.next
	d.mu.Unlock()
	if v == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	pv, changed, seq, err := d.s.replica.PublishDir(ctx, v.Snapshot.Bundle, v.Source)
	if err != nil {
		d.s.log.Warn("policy directory change not yet published to the cluster; retrying", "version", v.ID, "err", err)
		return false
	}
	d.mu.Lock()
	if d.next == v {
		d.next = nil
	}
	d.mu.Unlock()
	if changed {
		d.s.log.Info("policy directory published", "version", pv.ID, "policy_seq", seq)
	}
	return true
}

// run publishes offered versions until ctx is done.
func (d *dirPublisher) run(ctx context.Context) error {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-retry.C:
		}
		if !d.publishPending(ctx) && ctx.Err() == nil {
			retry.Reset(2 * time.Second)
		}
	}
}

// readiness is the body of /readyz: the verdict, the active version and
// this replica's replication state (sequences, lag, staleness).
type readiness struct {
	Status        string          `json:"status"`
	Reason        string          `json:"reason,omitempty"`
	PolicyVersion string          `json:"policy_version,omitempty"`
	Replica       *replica.Status `json:"replica,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	body := readiness{Status: "ready"}
	if s.replica != nil {
		st := s.replica.Status()
		body.Replica = &st
	}
	status := http.StatusOK
	if err := s.Ready(); err != nil {
		body.Status, body.Reason = "not ready", err.Error()
		status = http.StatusServiceUnavailable
	}
	if v := s.store.Active(); v != nil {
		body.PolicyVersion = v.ID
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
