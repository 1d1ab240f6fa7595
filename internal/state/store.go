package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Journal names.
const (
	StreamName    = "VIGIL_SIGNALS"
	SubjectPrefix = "vigil.signals."
	// headerVersion carries the record format version.
	headerVersion = "Vigil-Record"
	recordVersion = "1"
)

// Errors callers branch on.
var (
	// ErrUnavailable means the journal could not accept or confirm the
	// signal; retry later (the push receiver answers 503).
	ErrUnavailable = errors.New("signal journal unavailable")
	// ErrCapacity means max_subjects is reached; retry later.
	ErrCapacity = errors.New("live state is at max_subjects capacity")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("state store closed")
)

// Store is the durable live state: a journal of signals on NATS JetStream
// and the snapshot materialised from it.
//
// Lifecycle: Open connects (or starts the embedded server), makes sure the
// stream exists and starts replaying the journal from the beginning in the
// background; Ready turns true once the replay has caught up with the
// journal as it was at Open. Publish appends and waits until the local
// snapshot has applied the record. Close stops following, closes the
// connection and shuts the embedded server down.
//
// Goroutines (all stopped by Close): a reader that pulls journal messages,
// the applier that owns the snapshot builder (it also sweeps expired facts),
// and a janitor that deletes superseded stateful records from the journal.
type Store struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	strm jetstream.Stream

	cur     atomic.Pointer[Snapshot]
	mu      sync.Mutex
	changed chan struct{} // closed when a new snapshot is swapped in

	ready     chan struct{}
	readyOnce sync.Once

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	garbage   chan []uint64
	closed    chan struct{}
	closeOnce sync.Once
}

// Option adjusts a Store for tests and embedding.
type Option func(*options)

type options struct {
	now           func() time.Time
	sweepInterval time.Duration
}

// WithClock sets the clock used for Received times and expiry.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSweepInterval sets how often a slice of the index is swept for
// expired facts (the whole index is covered every 16 ticks). Default 5s.
func WithSweepInterval(d time.Duration) Option { return func(o *options) { o.sweepInterval = d } }

// Open connects to the journal and starts materialising it. The config
// must have been defaulted and validated. The returned store is not yet
// Ready; use WaitReady before serving decisions.
func Open(ctx context.Context, cfg Config, logger *slog.Logger, opts ...Option) (*Store, error) {
	o := options{now: time.Now, sweepInterval: 5 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		cfg:     cfg,
		log:     logger,
		now:     o.now,
		changed: make(chan struct{}),
		ready:   make(chan struct{}),
		garbage: make(chan []uint64, 64),
		closed:  make(chan struct{}),
	}
	if err := s.connect(ctx); err != nil {
		s.shutdownNATS()
		return nil, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.shutdownNATS()
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	s.js = js
	strm, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Vigil security signals (CAEP/RISC/admin/risk), applied in order by every replica",
		Subjects:    []string{SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    cfg.MaxBytes,
		Duplicates:  cfg.DedupeWindow,
		Replicas:    cfg.Replicas,
		AllowMsgTTL: true,
	})
	if err != nil {
		s.shutdownNATS()
		return nil, fmt.Errorf("create stream %s (NATS 2.11 or later with JetStream is required): %w", StreamName, err)
	}
	s.strm = strm
	info, err := strm.Info(ctx)
	if err != nil {
		s.shutdownNATS()
		return nil, fmt.Errorf("read stream %s: %w", StreamName, err)
	}
	cons, err := strm.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		s.shutdownNATS()
		return nil, fmt.Errorf("follow stream %s: %w", StreamName, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		s.shutdownNATS()
		return nil, fmt.Errorf("follow stream %s: %w", StreamName, err)
	}

	b := newBuilder(maphash.MakeSeed(), cfg.Retention)
	if info.State.Msgs == 0 {
		b.seq = info.State.LastSeq
	}
	s.cur.Store(b.freeze())
	if info.State.Msgs == 0 {
		s.markReady(0)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	msgs := make(chan jetstream.Msg, 1024)
	s.wg.Add(4)
	go func() { defer s.wg.Done(); PumpMessages(runCtx, it, msgs, s.nc, s.log, "journal") }()
	go func() { defer s.wg.Done(); s.apply(runCtx, b, cons, msgs, o.sweepInterval) }()
	go func() { defer s.wg.Done(); s.janitor(runCtx) }()
	go func() { defer s.wg.Done(); <-runCtx.Done(); it.Stop() }()
	s.log.Info("signal journal opened", "stream", StreamName, "messages", info.State.Msgs,
		"last_seq", info.State.LastSeq, "embedded", s.srv != nil)
	return s, nil
}

func (s *Store) connect(ctx context.Context) error {
	nopts := []nats.Option{
		nats.Name("vigil"),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { s.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	if s.cfg.NATSURL == "" {
		if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data_dir %s: %w", s.cfg.DataDir, err)
		}
		srv, err := server.NewServer(&server.Options{
			ServerName: "vigil-embedded",
			DontListen: true,
			JetStream:  true,
			StoreDir:   filepath.Join(s.cfg.DataDir, "jetstream"),
			NoSigs:     true,
		})
		if err != nil {
			return fmt.Errorf("embedded nats server: %w", err)
		}
		srv.SetLoggerV2(natsLogger{s.log.With("component", "nats")}, false, false, false)
		srv.Start()
		s.srv = srv
		if !srv.ReadyForConnections(30 * time.Second) {
			return errors.New("embedded nats server did not start within 30s (is data_dir writable and not used by another process?)")
		}
		nopts = append(nopts, nats.InProcessServer(srv))
	} else {
		c := s.cfg.NATS
		if c.CredsFile != "" {
			nopts = append(nopts, nats.UserCredentials(c.CredsFile))
		}
		if c.User != "" {
			nopts = append(nopts, nats.UserInfo(c.User, c.Password))
		}
		if c.Token != "" {
			nopts = append(nopts, nats.Token(c.Token))
		}
		if c.TLS.CAFile != "" {
			nopts = append(nopts, nats.RootCAs(c.TLS.CAFile))
		}
		if c.TLS.CertFile != "" {
			nopts = append(nopts, nats.ClientCert(c.TLS.CertFile, c.TLS.KeyFile))
		}
	}
	url := s.cfg.NATSURL
	if deadline, ok := ctx.Deadline(); ok {
		nopts = append(nopts, nats.Timeout(time.Until(deadline)))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		if url == "" {
			return fmt.Errorf("connect to embedded nats: %w", err)
		}
		return fmt.Errorf("connect to nats_url: %w", err)
	}
	s.nc = nc
	return nil
}

// PumpMessages moves messages from a JetStream consumer iterator into msgs
// until ctx is done, the iterator is stopped or the connection is closed.
// Transient read errors are logged (naming what is read) and retried.
// Both the signal journal and the replicated policy log are read this way.
func PumpMessages(ctx context.Context, it jetstream.MessagesContext, msgs chan<- jetstream.Msg, nc *nats.Conn, log *slog.Logger, what string) {
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil || nc.IsClosed() {
				return
			}
			log.Warn(what+" read failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return
		}
	}
}

// apply owns the builder: it applies journal messages in order, swaps in a
// new snapshot whenever the queue drains, and sweeps expired facts.
func (s *Store) apply(ctx context.Context, b *builder, cons jetstream.Consumer, msgs <-chan jetstream.Msg, sweepEvery time.Duration) {
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	idle := time.NewTimer(time.Second)
	defer idle.Stop()
	sweepFrom := 0
	caughtUp := false
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			caughtUp = s.applyMsg(b, m)
			for n := 0; n < 4096 && !caughtUp; n++ {
				select {
				case m = <-msgs:
					caughtUp = s.applyMsg(b, m)
					continue
				default:
				}
				break
			}
			s.swap(b)
			if caughtUp {
				s.markReady(b.seq)
			}
			idle.Reset(time.Second)
		case <-idle.C:
			// A replay whose remaining messages vanished (deleted or
			// expired) delivers nothing more: ask the consumer.
			if !s.Ready() {
				if info, err := cons.Info(ctx); err == nil && info.NumPending == 0 && len(msgs) == 0 {
					s.swap(b)
					s.markReady(b.seq)
				}
			}
			idle.Reset(time.Second)
		case <-sweep.C:
			step := numShards / 16
			removed := b.sweep(s.now(), sweepFrom, sweepFrom+step)
			sweepFrom = (sweepFrom + step) % numShards
			if removed > 0 {
				s.log.Debug("expired live state", "keys", removed)
			}
			if b.dirty {
				s.swap(b)
			}
		}
	}
}

// applyMsg applies one journal message and reports whether the consumer
// has nothing more pending.
func (s *Store) applyMsg(b *builder, m jetstream.Msg) bool {
	meta, err := m.Metadata()
	if err != nil {
		s.log.Error("journal message without metadata; skipped", "err", err)
		return false
	}
	var sig Signal
	if err := json.Unmarshal(m.Data(), &sig); err != nil {
		s.log.Error("journal record is not a signal; skipped", "seq", meta.Sequence.Stream, "subject", m.Subject(), "err", err)
		b.seq = max(b.seq, meta.Sequence.Stream)
		return meta.NumPending == 0
	}
	if err := sig.Validate(); err != nil {
		s.log.Error("journal record is not a valid signal; skipped", "seq", meta.Sequence.Stream, "id", sig.ID, "err", err)
		b.seq = max(b.seq, meta.Sequence.Stream)
		return meta.NumPending == 0
	}
	if err := b.apply(&sig, meta.Sequence.Stream, s.now()); err != nil {
		s.log.Error("journal record cannot be applied; skipped", "seq", meta.Sequence.Stream, "id", sig.ID, "err", err)
	}
	return meta.NumPending == 0
}

func (s *Store) swap(b *builder) {
	snap := b.freeze()
	s.cur.Store(snap)
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if g := b.takeGarbage(); len(g) > 0 {
		select {
		case s.garbage <- g:
		default: // janitor busy: the next replay finds these again
		}
	}
}

func (s *Store) markReady(seq uint64) {
	s.readyOnce.Do(func() {
		s.log.Info("live state rebuilt from journal", "seq", seq, "keys", s.Current().Len())
		close(s.ready)
	})
}

// janitor deletes superseded stateful records from the journal, so that
// the journal holds one record per current stateful fact.
func (s *Store) janitor(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case seqs := <-s.garbage:
			for _, seq := range seqs {
				dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := s.strm.DeleteMsg(dctx, seq)
				cancel()
				if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && ctx.Err() == nil {
					s.log.Debug("delete superseded journal record", "seq", seq, "err", err)
				}
			}
		}
	}
}

// Ready reports whether the journal has been replayed.
func (s *Store) Ready() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// WaitReady blocks until Ready or ctx is done.
func (s *Store) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-s.closed:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("wait for journal replay: %w", ctx.Err())
	}
}

// Current returns the latest snapshot. It never returns nil.
func (s *Store) Current() *Snapshot { return s.cur.Load() }

// Seq returns the journal sequence of the latest snapshot.
func (s *Store) Seq() uint64 { return s.cur.Load().seq }

// Changed returns a channel closed when a snapshot newer than the current
// one is swapped in (for re-deciding long-lived requests).
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// WaitFor blocks until the local snapshot has applied journal sequence seq.
func (s *Store) WaitFor(ctx context.Context, seq uint64) error {
	for {
		ch := s.Changed()
		if s.cur.Load().seq >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-s.closed:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting to apply seq %d: %w", ErrUnavailable, seq, ctx.Err())
		}
	}
}

// msgID is the journal deduplication ID of a signal: a hash, so that IDs
// from untrusted input never reach a header verbatim.
func msgID(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:16])
}

// Publish appends a signal to the journal and returns once the local
// snapshot has applied it: every decision that starts afterwards on this
// node sees it. A duplicate (same ID within dedupe_window) is not appended
// again; Publish then returns the original's sequence, also once applied.
// Received is set to now if zero, EventTime to Received if zero, and an
// EventTime in the future is clamped to Received.
//
// Errors: ErrInvalid (never acceptable), ErrCapacity and ErrUnavailable
// (retry later), ErrClosed.
func (s *Store) Publish(ctx context.Context, sig Signal) (uint64, error) {
	select {
	case <-s.closed:
		return 0, ErrClosed
	default:
	}
	if sig.Received.IsZero() {
		sig.Received = s.now()
	}
	sig.Received = sig.Received.UTC()
	if sig.EventTime.IsZero() || sig.EventTime.After(sig.Received) {
		sig.EventTime = sig.Received
	}
	sig.EventTime = sig.EventTime.UTC()
	if err := sig.Validate(); err != nil {
		return 0, err
	}
	if y := sig.EventTime.Year(); y < 1970 || y > 2200 {
		return 0, fmt.Errorf("%w: event_time %s is out of range", ErrInvalid, sig.EventTime)
	}
	principal := ""
	if sig.Risk != nil {
		principal = sig.Risk.Principal
	}
	ts, err := targets(sig.Kind, principal, sig.Subject)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	snap := s.Current()
	if n, full := snap.newKeys(ts); full || (n > 0 && snap.Len()+n > s.cfg.MaxSubjects) {
		return 0, fmt.Errorf("%w (%d keys tracked, max_subjects %d)", ErrCapacity, snap.Len(), s.cfg.MaxSubjects)
	}
	data, err := json.Marshal(&sig)
	if err != nil {
		return 0, fmt.Errorf("%w: encode: %w", ErrInvalid, err)
	}
	msg := nats.NewMsg(SubjectPrefix + string(sig.Kind))
	msg.Data = data
	msg.Header.Set(headerVersion, recordVersion)
	popts := []jetstream.PublishOpt{jetstream.WithMsgID(msgID(sig.ID)), jetstream.WithExpectStream(StreamName)}
	if !sig.Kind.Stateful() {
		popts = append(popts, jetstream.WithMsgTTL(s.cfg.Retention))
	}
	ack, err := s.js.PublishMsg(ctx, msg, popts...)
	if err != nil {
		return 0, fmt.Errorf("%w: append %s: %w", ErrUnavailable, sig.ID, err)
	}
	if err := s.WaitFor(ctx, ack.Sequence); err != nil {
		return ack.Sequence, err
	}
	return ack.Sequence, nil
}

// Close stops following the journal and releases NATS. It is safe to call
// more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.cancel()
		s.wg.Wait()
		s.shutdownNATS()
	})
	return nil
}

func (s *Store) shutdownNATS() {
	if s.nc != nil {
		s.nc.Close()
	}
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// natsLogger routes the embedded server's log to slog. Notices are chatty
// start-up banners, so they go to debug.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
