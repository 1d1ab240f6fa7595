package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/state"
)

// Names of the replicated policy log.
const (
	// PolicyStream holds one small record per policy activation, in order;
	// its sequence is the policy sequence.
	PolicyStream = "VIGIL_POLICIES"
	// PolicySubject is the subject activation records are published on.
	PolicySubject = "vigil.policies.activations"
	// BundleBucket is the object store holding bundles by version ID
	// (content-addressed, so a bundle of any size up to policy.MaxTotal
	// replicates in chunks).
	BundleBucket = "VIGIL_POLICY_BUNDLES"

	// keepRecords bounds the activation records kept in the stream.
	keepRecords = 1000
	// inlineLimit is the largest encoded bundle carried inside its
	// activation record, so that followers apply it without fetching
	// anything; larger bundles go to the object store. The connection's
	// max_payload may lower it.
	inlineLimit = 256 << 10
	// maxRecordBytes bounds one activation record.
	maxRecordBytes = inlineLimit + 8<<10
	// maxStreamBytes bounds the activation stream; the oldest records go
	// first.
	maxStreamBytes = 256 << 20
	// maxBundleBytes bounds a stored bundle: the files, base64-encoded,
	// plus JSON framing.
	maxBundleBytes = policy.MaxTotal/3*4 + 64<<20
	// bundleGrace is how old an unreferenced bundle must be before it is
	// deleted, so that a bundle stored just before its record is published
	// is never collected in between.
	bundleGrace = time.Hour
	// cachedBundles is how many bundles published by this replica are kept
	// in memory so that applying its own activations needs no fetch.
	cachedBundles = 4

	recordHeader   = "Vigil-Record"
	recordVersion  = "1"
	sourceRollback = "rollback"
)

// activation is one record of the policy log: which version became
// active, where it came from, which replica published it and, for bundles
// up to inlineLimit, the bundle itself (otherwise it is in the object
// store under the version ID).
type activation struct {
	Version string        `json:"version"`
	Source  string        `json:"source"`
	Origin  string        `json:"origin,omitempty"`
	At      time.Time     `json:"at"`
	Bundle  *storedBundle `json:"bundle,omitempty"`
}

// validVersion accepts the hex content hashes policy.Bundle.Hash makes.
func validVersion(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// storedBundle is the object-store form of a bundle. Data is []byte so that
// file contents round-trip byte for byte (the version ID hashes them).
type storedBundle struct {
	Files []storedFile `json:"files"`
}

type storedFile struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

func toStored(b policy.Bundle) *storedBundle {
	sb := &storedBundle{Files: make([]storedFile, len(b.Files))}
	for i, f := range b.Files {
		sb.Files[i] = storedFile{Name: f.Name, Data: f.Data}
	}
	return sb
}

func decodeBundle(data []byte) (policy.Bundle, error) {
	var sb storedBundle
	if err := json.Unmarshal(data, &sb); err != nil {
		return policy.Bundle{}, err
	}
	return sb.bundle()
}

func (sb *storedBundle) bundle() (policy.Bundle, error) {
	if len(sb.Files) > policy.MaxFiles {
		return policy.Bundle{}, fmt.Errorf("%d files; at most %d are allowed", len(sb.Files), policy.MaxFiles)
	}
	b := policy.Bundle{Files: make([]policy.File, len(sb.Files))}
	for i, f := range sb.Files {
		b.Files[i] = policy.File{Name: f.Name, Data: f.Data}
	}
	return b, nil
}

// ensure creates or updates a stream or bucket, retrying until ctx is done.
// Replicas starting together race to create the same stream; on a cluster a
// request can then go unanswered until the stream has a leader, so each
// attempt gets a short deadline of its own.
func ensure[T any](ctx context.Context, log *slog.Logger, name string, create func(context.Context) (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		v, err := create(actx)
		cancel()
		if err == nil {
			return v, nil
		}
		log.Debug("create JetStream asset; retrying", "name", name, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, time.Second)):
		}
	}
}

// seen is a record remembered in the ring.
type seen struct {
	version string
	seq     uint64
}

// pendingRecord is a received activation not yet applied.
type pendingRecord struct {
	seq uint64
	rec activation
}

// policyLog follows the activation stream and applies it to the local
// policy store, in order. While replaying at start only the latest record
// is compiled: intermediate versions were never observable anyway.
//
// Goroutines (stopped by cancelling the context given to start): a reader
// pulling records and the applier, which owns the queue.
type policyLog struct {
	js    jetstream.JetStream
	strm  jetstream.Stream
	obj   jetstream.ObjectStore
	store *policy.Store
	log   *slog.Logger

	applied atomic.Uint64

	maxInline int // largest bundle carried inline

	mu       sync.Mutex
	changed  chan struct{} // closed when applied advances
	lastDir  string        // version of the latest "dir:" record
	recent   []seen        // the latest keepRecords records (ring)
	next     int
	inline   map[string]uint64 // version → seq of a record carrying it
	bundles  map[string]policy.Bundle
	cacheIDs []string

	replayed     chan struct{}
	replayedOnce sync.Once
	lastErr      atomic.Pointer[string] // why the latest record could not be applied; nil when it was
}

func openPolicyLog(ctx context.Context, js jetstream.JetStream, store *policy.Store, replicas int, log *slog.Logger) (*policyLog, error) {
	scfg := jetstream.StreamConfig{
		Name:        PolicyStream,
		Description: "Vigil policy activations (push, rollback, directory reload), applied in order by every replica",
		Subjects:    []string{PolicySubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     keepRecords,
		MaxBytes:    maxStreamBytes,
		MaxMsgSize:  maxRecordBytes,
		Replicas:    replicas,
	}
	strm, err := ensure(ctx, log, PolicyStream, func(ctx context.Context) (jetstream.Stream, error) {
		s, err := js.CreateStream(ctx, scfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return js.UpdateStream(ctx, scfg)
		}
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", PolicyStream, err)
	}
	ocfg := jetstream.ObjectStoreConfig{
		Bucket:      BundleBucket,
		Description: "Vigil policy bundles by version ID",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
	obj, err := ensure(ctx, log, BundleBucket, func(ctx context.Context) (jetstream.ObjectStore, error) {
		o, err := js.CreateObjectStore(ctx, ocfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			return js.UpdateObjectStore(ctx, ocfg)
		}
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("create object store %s: %w", BundleBucket, err)
	}
	l := &policyLog{
		js: js, strm: strm, obj: obj, store: store, log: log,
		maxInline: inlineLimit,
		changed:   make(chan struct{}),
		recent:    make([]seen, keepRecords),
		inline:    map[string]uint64{},
		bundles:   map[string]policy.Bundle{},
		replayed:  make(chan struct{}),
	}
	if mp := int(js.Conn().MaxPayload()) - 8<<10; mp < l.maxInline {
		l.maxInline = max(mp, 0)
	}
	return l, nil
}

// start begins following the log from its first record.
func (l *policyLog) start(ctx context.Context, wg *sync.WaitGroup) error {
	info, err := l.strm.Info(ctx)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", PolicyStream, err)
	}
	cons, err := l.strm.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("follow stream %s: %w", PolicyStream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(64), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("follow stream %s: %w", PolicyStream, err)
	}
	if info.State.Msgs == 0 {
		l.setApplied(info.State.LastSeq)
		l.markReplayed()
	}
	msgs := make(chan jetstream.Msg, 64)
	wg.Add(3)
	go func() { defer wg.Done(); state.PumpMessages(ctx, it, msgs, l.js.Conn(), l.log, "policy log") }()
	go func() { defer wg.Done(); l.follow(ctx, cons, msgs) }()
	go func() { defer wg.Done(); <-ctx.Done(); it.Stop() }()
	return nil
}

// follow owns the queue of received records and applies them in order.
func (l *policyLog) follow(ctx context.Context, cons jetstream.Consumer, msgs <-chan jetstream.Msg) {
	var queue []pendingRecord
	var lastSeq uint64
	replaying := !l.isReplayed()
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			caughtUp := l.receive(m, &queue, &lastSeq, replaying)
			for n := 0; n < 1024; n++ {
				select {
				case m = <-msgs:
					caughtUp = l.receive(m, &queue, &lastSeq, replaying)
					continue
				default:
				}
				break
			}
			if replaying && !caughtUp {
				continue
			}
		case <-idle.C:
			// A replay whose remaining records vanished (the stream's
			// limit removed them) delivers nothing more: ask the consumer.
			if !replaying {
				continue
			}
			info, err := cons.Info(ctx)
			if err != nil || info.NumPending != 0 || len(msgs) != 0 {
				continue
			}
		case <-retry.C:
		}
		replaying = false
		if l.drain(ctx, &queue, lastSeq) {
			failures = 0
			continue
		}
		failures++
		retry.Reset(min(time.Duration(failures)*250*time.Millisecond, 5*time.Second))
	}
}

// receive queues one record and reports whether the consumer has nothing
// more pending. While replaying, only the latest record is kept.
func (l *policyLog) receive(m jetstream.Msg, queue *[]pendingRecord, lastSeq *uint64, replaying bool) bool {
	meta, err := m.Metadata()
	if err != nil {
		l.log.Error("policy log message without metadata; skipped", "err", err)
		return false
	}
	seq := meta.Sequence.Stream
	*lastSeq = max(*lastSeq, seq)
	var rec activation
	switch {
	case len(m.Data()) > maxRecordBytes:
		l.log.Error("policy log record too large; skipped", "seq", seq, "bytes", len(m.Data()))
	case json.Unmarshal(m.Data(), &rec) != nil || !validVersion(rec.Version):
		l.log.Error("policy log record is not an activation; skipped", "seq", seq)
	default:
		l.note(seq, rec)
		if replaying {
			*queue = (*queue)[:0]
		}
		*queue = append(*queue, pendingRecord{seq: seq, rec: rec})
	}
	return meta.NumPending == 0
}

// note remembers what a record says about the cluster's history: the
// latest directory version, the versions the stream still names (for the
// bundle collector) and where inline bundles are (for rollbacks).
func (l *policyLog) note(seq uint64, rec activation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if isDirSource(rec.Source) {
		l.lastDir = rec.Version
	}
	if old := l.recent[l.next]; old.version != "" && l.inline[old.version] == old.seq {
		delete(l.inline, old.version)
	}
	l.recent[l.next] = seen{version: rec.Version, seq: seq}
	l.next = (l.next + 1) % len(l.recent)
	if rec.Bundle != nil {
		l.inline[rec.Version] = seq
	}
}

func isDirSource(s string) bool { return len(s) >= 4 && s[:4] == "dir:" }

// drain applies queued records in order. A record that cannot be applied
// is skipped when a newer one is queued (it was superseded); otherwise
// drain stops, leaves it queued for a retry and reports false: the applied
// sequence stays behind, so the replica cannot prove it is fresh and fails
// closed once max_staleness passes.
func (l *policyLog) drain(ctx context.Context, queue *[]pendingRecord, lastSeq uint64) bool {
	for len(*queue) > 0 {
		p := (*queue)[0]
		if err := l.activate(ctx, p.rec); err != nil {
			if len(*queue) > 1 {
				l.log.Warn("policy activation could not be applied on this replica; a newer one supersedes it",
					"seq", p.seq, "version", p.rec.Version, "origin", p.rec.Origin, "err", err)
				*queue = (*queue)[1:]
				continue
			}
			msg := fmt.Sprintf("policy activation %d (version %s from %s) could not be applied: %v", p.seq, p.rec.Version, p.rec.Origin, err)
			if old := l.lastErr.Swap(&msg); old == nil || *old != msg {
				l.log.Error("policy activation could not be applied on this replica; retrying, failing closed after max_staleness",
					"seq", p.seq, "version", p.rec.Version, "origin", p.rec.Origin, "err", err)
			}
			l.setApplied(p.seq - 1)
			l.markReplayed()
			return false
		}
		l.lastErr.Store(nil)
		l.setApplied(p.seq)
		*queue = (*queue)[1:]
	}
	l.setApplied(lastSeq)
	l.markReplayed()
	return true
}

// activate makes rec's version active in the local store.
func (l *policyLog) activate(ctx context.Context, rec activation) error {
	if cur := l.store.Active(); cur != nil && cur.ID == rec.Version {
		return nil
	}
	if rec.Source == sourceRollback {
		if _, err := l.store.Rollback(rec.Version); err == nil {
			return nil
		}
	}
	b, ok := l.cached(rec.Version)
	var err error
	switch {
	case ok:
	case rec.Bundle != nil:
		b, err = inlineBundle(rec)
	default:
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		b, err = l.bundle(fctx, rec.Version)
		cancel()
	}
	if err != nil {
		return err
	}
	if _, _, err := l.store.Apply(b, rec.Source); err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	return nil
}

// bundle finds a version's files: in memory (published here, or in the
// local history) or in the object store.
func (l *policyLog) bundle(ctx context.Context, id string) (policy.Bundle, error) {
	if b, ok := l.cached(id); ok {
		return b, nil
	}
	for _, v := range l.store.History() {
		if v.ID == id {
			return v.Snapshot.Bundle, nil
		}
	}
	l.mu.Lock()
	seq, ok := l.inline[id]
	l.mu.Unlock()
	if ok {
		if b, err := l.fromRecord(ctx, id, seq); err == nil {
			return b, nil
		}
	}
	return l.fetch(ctx, id)
}

// cached returns a bundle this replica published recently.
func (l *policyLog) cached(id string) (policy.Bundle, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.bundles[id]
	return b, ok
}

// fromRecord reads an inline bundle back from the record at seq.
func (l *policyLog) fromRecord(ctx context.Context, id string, seq uint64) (policy.Bundle, error) {
	m, err := l.strm.GetMsg(ctx, seq)
	if err != nil {
		return policy.Bundle{}, fmt.Errorf("read activation %d: %w", seq, err)
	}
	var rec activation
	if err := json.Unmarshal(m.Data, &rec); err != nil || rec.Version != id || rec.Bundle == nil {
		return policy.Bundle{}, fmt.Errorf("activation %d does not carry %s", seq, id)
	}
	return inlineBundle(rec)
}

// inlineBundle returns the bundle a record carries, checked against its
// version.
func inlineBundle(rec activation) (policy.Bundle, error) {
	b, err := rec.Bundle.bundle()
	if err != nil {
		return policy.Bundle{}, fmt.Errorf("bundle of %s: %w", rec.Version, err)
	}
	if h := b.Hash(); h != rec.Version {
		return policy.Bundle{}, fmt.Errorf("bundle of %s has content hash %s; refusing it", rec.Version, h)
	}
	return b, nil
}

// fetch reads a bundle from the object store and checks its hash.
func (l *policyLog) fetch(ctx context.Context, id string) (policy.Bundle, error) {
	res, err := l.obj.Get(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return policy.Bundle{}, fmt.Errorf("bundle %s: %w", id, policy.ErrUnknownVersion)
		}
		return policy.Bundle{}, fmt.Errorf("fetch bundle %s: %w", id, err)
	}
	defer res.Close()
	data, err := io.ReadAll(io.LimitReader(res, maxBundleBytes+1))
	if err != nil {
		return policy.Bundle{}, fmt.Errorf("fetch bundle %s: %w", id, err)
	}
	if len(data) > maxBundleBytes {
		return policy.Bundle{}, fmt.Errorf("bundle %s is larger than %d bytes", id, maxBundleBytes)
	}
	b, err := decodeBundle(data)
	if err != nil {
		return policy.Bundle{}, fmt.Errorf("decode bundle %s: %w", id, err)
	}
	if h := b.Hash(); h != id {
		return policy.Bundle{}, fmt.Errorf("bundle %s has content hash %s; refusing it", id, h)
	}
	return b, nil
}

// remember keeps a bundle this replica publishes, so applying it needs no
// fetch.
func (l *policyLog) remember(id string, b policy.Bundle) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.bundles[id]; ok {
		return
	}
	l.bundles[id] = b
	l.cacheIDs = append(l.cacheIDs, id)
	if len(l.cacheIDs) > cachedBundles {
		delete(l.bundles, l.cacheIDs[0])
		l.cacheIDs = l.cacheIDs[1:]
	}
}

// record publishes an activation of version id and returns its sequence.
// A bundle up to maxInline travels inside the record; a larger one is
// stored in the object store first (always written, so that its age
// restarts and the collector cannot remove it before the record exists).
func (l *policyLog) record(ctx context.Context, id string, b policy.Bundle, source, origin string) (uint64, error) {
	rec := activation{Version: id, Source: source, Origin: origin, At: time.Now().UTC()}
	sb := toStored(b)
	data, err := json.Marshal(sb)
	if err != nil {
		return 0, fmt.Errorf("encode bundle %s: %w", id, err)
	}
	if len(data) <= l.maxInline {
		rec.Bundle = sb
	} else if _, err := l.obj.PutBytes(ctx, id, data); err != nil {
		return 0, fmt.Errorf("store bundle %s: %w", id, err)
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode activation: %w", err)
	}
	msg := nats.NewMsg(PolicySubject)
	msg.Data = raw
	msg.Header.Set(recordHeader, recordVersion)
	ack, err := l.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(PolicyStream))
	if err != nil {
		return 0, fmt.Errorf("append activation of %s: %w", id, err)
	}
	return ack.Sequence, nil
}

// collect deletes stored bundles that no retained record names and that
// are older than bundleGrace. Every replica may run it; deleting twice is
// harmless.
func (l *policyLog) collect(ctx context.Context) (int, error) {
	keep := map[string]bool{}
	l.mu.Lock()
	for _, r := range l.recent {
		if r.version != "" {
			keep[r.version] = true
		}
	}
	l.mu.Unlock()
	if v := l.store.Active(); v != nil {
		keep[v.ID] = true
	}
	infos, err := l.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list bundles: %w", err)
	}
	n := 0
	for _, info := range infos {
		if keep[info.Name] || time.Since(info.ModTime) < bundleGrace {
			continue
		}
		if err := l.obj.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return n, fmt.Errorf("delete bundle %s: %w", info.Name, err)
		}
		n++
	}
	return n, nil
}

func (l *policyLog) lastDirVersion() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastDir
}

// Applied returns the sequence of the last record applied.
func (l *policyLog) Applied() uint64 { return l.applied.Load() }

func (l *policyLog) setApplied(seq uint64) {
	if seq <= l.applied.Load() {
		return
	}
	l.applied.Store(seq) // only the applier writes
	l.mu.Lock()
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *policyLog) changedCh() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// WaitFor blocks until record seq has been applied (or skipped as
// superseded) here.
func (l *policyLog) WaitFor(ctx context.Context, seq uint64) error {
	for {
		ch := l.changedCh()
		if l.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for policy seq %d (applied %d): %w", seq, l.applied.Load(), ctx.Err())
		}
	}
}

func (l *policyLog) markReplayed() {
	l.replayedOnce.Do(func() { close(l.replayed) })
}

func (l *policyLog) isReplayed() bool {
	select {
	case <-l.replayed:
		return true
	default:
		return false
	}
}

// failure says why the latest record is not applied ("" when it is).
func (l *policyLog) failure() string {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}
