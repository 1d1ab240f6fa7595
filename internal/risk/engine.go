package risk

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/vigil-authz/vigil/internal/state"
)

// Publisher writes signals to the journal. *state.Store implements it.
// Publish returns once the signal is in force on this node.
type Publisher interface {
	Publish(ctx context.Context, sig state.Signal) (uint64, error)
}

// StateReader gives the current live state. *state.Store implements it.
// The engine reads it when it first sees a key, to pick up a level it
// recorded before a restart.
type StateReader interface {
	Current() *state.Snapshot
}

// Notifier receives every published level change (not score-only
// updates), after the journal accepted it. It must not block.
// *Transmitter implements it.
type Notifier interface {
	Notify(Change)
}

var (
	_ Publisher   = (*state.Store)(nil)
	_ StateReader = (*state.Store)(nil)
	_ Notifier    = (*Transmitter)(nil)
)

// Principals of changes (CAEP risk-level-change principal).
const (
	PrincipalUser    = "USER"
	PrincipalSession = "SESSION"
)

// Change is a published risk change of a user or a session.
type Change struct {
	// ID is the journal signal's id.
	ID string
	// Principal is PrincipalUser or PrincipalSession.
	Principal string
	// Issuer and Subject identify the user (for a session: its user).
	Issuer  string
	Subject string
	// SessionID is set for sessions.
	SessionID string
	// Level and PreviousLevel are LOW, MEDIUM or HIGH.
	Level         string
	PreviousLevel string
	Score         int
	Reasons       []string
	Time          time.Time
}

// Source is the journal source of the engine's signals.
const Source = state.SourceRisk

// EventType is the event type recorded with the engine's signals.
const EventType = "https://schemas.openid.net/secevent/caep/event-type/risk-level-change"

// Options are the dependencies of an Engine.
type Options struct {
	// Config is the risk configuration; New applies SetDefaults and
	// Validate to a copy.
	Config Config
	// Publisher receives level changes (required).
	Publisher Publisher
	// State, when set, lets the engine resume levels it recorded before a
	// restart.
	State StateReader
	// Notifier, when set, receives level changes after they are journalled.
	Notifier Notifier
	// Registerer, when set, gets the engine's metrics.
	Registerer prometheus.Registerer
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// Now is the clock of ticks (fading, eviction); events carry their own
	// time. Default time.Now.
	Now func() time.Time
}

// Engine scores live traffic. Observe feeds it from the request path
// (never blocking); one goroutine (Run) applies the detectors to events in
// order, keeps per-subject and per-session scores, and publishes level
// changes through the Publisher from a second goroutine, so that neither
// requests nor scoring ever wait for the journal.
//
// Lifecycle: New builds without starting anything; Run processes until
// its context is cancelled, then writes the changes already queued
// (bounded by publish.timeout) and returns. Observe may be called before,
// during and after Run; events that do not fit the queue are dropped and
// counted.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	pub      Publisher
	state    StateReader
	notifier Notifier
	m        *engineMetrics

	events   chan Event
	flushes  chan chan struct{}
	jobs     chan pubJob
	failures chan pubFailure
	running  atomic.Bool

	// Everything below is guarded by mu: the Run goroutine holds it while
	// it processes events; Inspect takes it briefly.
	mu       sync.Mutex
	rules    *rules
	fade     float64
	rate     *rateDetector
	denied   *deniedDetector
	travel   *travelDetector
	hijack   *hijackDetector
	newctx   *newContextDetector
	enum     *enumDetector
	issuers  issuers
	subjects *table[subjectState]
	sessions *table[sessionState]
	tokens   *table[fingerprints]
	addrs    *table[slidingCount]
	// active holds the keys that need re-evaluation on ticks: a published
	// MEDIUM or HIGH level, or a change not yet published.
	active  map[*scoring]target
	limiter *rate.Limiter
	kb      []byte // key buffer
}

// subjectState is the per-user state: about 200 bytes.
type subjectState struct {
	scoring
	firstSeen stamp
	rate      rateState
	denied    slidingCount
	place     place
	known     known
	enum      enumState
}

// sessionState is the per-session state.
type sessionState struct {
	scoring
	subject string // the subject's key (shared with the subject table)
	rate    rateState
	place   place
	fp      fingerprints
}

// target names a key whose level may be published.
type target struct {
	principal string
	key       string
	subject   string // sessions: the subject's key
}

// New builds an engine.
func New(opts Options) (*Engine, error) {
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("risk config: %w", err)
	}
	if opts.Publisher == nil {
		return nil, errors.New("risk: Options.Publisher is required")
	}
	e := &Engine{
		cfg:      cfg,
		log:      opts.Log,
		now:      opts.Now,
		pub:      opts.Publisher,
		state:    opts.State,
		notifier: opts.Notifier,
		events:   make(chan Event, cfg.QueueSize),
		flushes:  make(chan chan struct{}),
		jobs:     make(chan pubJob, cfg.Publish.QueueSize),
		// Every job reports at most one failure, so failures never block.
		failures: make(chan pubFailure, cfg.Publish.QueueSize+1),
		fade:     *cfg.Score.Fade,
		subjects: newTable[subjectState](cfg.Limits.Subjects),
		sessions: newTable[sessionState](cfg.Limits.Sessions),
		tokens:   newTable[fingerprints](cfg.Limits.Tokens),
		addrs:    newTable[slidingCount](cfg.Limits.Addresses),
		active:   make(map[*scoring]target),
		limiter:  rate.NewLimiter(rate.Limit(cfg.Publish.Rate), max(1, int(cfg.Publish.Rate))),
		issuers:  issuers{idx: make(map[string]uint16)},
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	seed := maphash.MakeSeed()
	e.rules = newRules(&cfg)
	d := &cfg.Detectors
	e.rate = newRateDetector(&d.RequestRate, e.rules)
	e.denied = newDeniedDetector(&d.DeniedBurst, e.rules)
	e.travel = newTravelDetector(&d.ImpossibleTravel, e.rules)
	e.hijack = newHijackDetector(&d.SessionHijack, e.rules, seed)
	e.newctx = newNewContextDetector(&d.NewDevice, &d.NewCountry, e.rules, seed)
	e.enum = newEnumDetector(&d.Enumeration, e.rules, seed)
	e.m = newEngineMetrics(e)
	for d := range numDetectors {
		e.rules.fired[d] = e.m.detected.WithLabelValues(d.String())
	}
	if opts.Registerer != nil {
		if err := e.m.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("risk: register metrics: %w", err)
		}
	}
	e.subjects.onEvict = func(n *node[subjectState], idle bool) {
		delete(e.active, &n.val.scoring)
		e.m.evicted(tableSubjects, idle)
	}
	e.sessions.onEvict = func(n *node[sessionState], idle bool) {
		delete(e.active, &n.val.scoring)
		e.m.evicted(tableSessions, idle)
	}
	e.tokens.onEvict = func(_ *node[fingerprints], idle bool) { e.m.evicted(tableTokens, idle) }
	e.addrs.onEvict = func(_ *node[slidingCount], idle bool) { e.m.evicted(tableAddresses, idle) }
	return e, nil
}

// Config returns the effective configuration (defaults applied).
func (e *Engine) Config() Config { return e.cfg }

// Observe hands an event to the engine without blocking: when the queue
// is full the event is dropped and counted (vigil_risk_events_total
// {result="dropped"}). It is safe for concurrent use and allocates
// nothing.
func (e *Engine) Observe(ev Event) {
	select {
	case e.events <- ev:
	default:
		e.m.dropped.Inc()
	}
}

// batch bounds the events processed under one hold of the lock; gather is
// how long the engine lets events accumulate after it emptied the queue.
const (
	batch  = 256
	gather = 10 * time.Millisecond
)

// Run processes events until ctx is cancelled. It returns an error only if
// the engine is already running.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("risk: engine is already running")
	}
	defer e.running.Store(false)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.publishLoop(ctx)
	}()
	defer wg.Wait()
	tick := time.NewTicker(e.cfg.Tick)
	defer tick.Stop()
	gathering := time.NewTimer(gather)
	gathering.Stop()
	var pause <-chan time.Time // non-nil while events gather
	for {
		events := e.events
		if pause != nil {
			events = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			e.mu.Lock()
			e.process(&ev)
			n := 1
			for ; n < batch; n++ {
				select {
				case ev = <-e.events:
					e.process(&ev)
					continue
				default:
				}
				break
			}
			e.mu.Unlock()
			e.m.processed.Add(float64(n))
			if n < batch {
				// The queue is empty. Under load, waking this goroutine for
				// every event would cost more than scoring it (a wake-up
				// costs the scheduler tens of microseconds, partly on the
				// request path): let events gather for a moment instead.
				// Idle, the next receive blocks and costs nothing.
				gathering.Reset(gather)
				pause = gathering.C
			}
		case <-pause:
			pause = nil
		case <-tick.C:
			e.mu.Lock()
			e.tick(stampOf(e.now()))
			e.mu.Unlock()
		case f := <-e.failures:
			e.mu.Lock()
			e.failed(f)
			e.mu.Unlock()
		case done := <-e.flushes:
			e.mu.Lock()
			n := len(e.events)
			for range n {
				ev := <-e.events
				e.process(&ev)
			}
			e.mu.Unlock()
			e.m.processed.Add(float64(n))
			select {
			case e.jobs <- pubJob{barrier: done}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// Flush waits until every event observed before the call has been scored
// and every change it caused has been written to the journal (or failed).
// It needs Run to be running.
func (e *Engine) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case e.flushes <- done:
	case <-ctx.Done():
		return fmt.Errorf("risk: flush: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("risk: flush: %w", ctx.Err())
	}
}

// Limits on identifiers the engine keeps (the journal's own limit).
const maxIDLen = 1024

// process applies the detectors to one event. Caller holds mu (and
// counts the event).
func (e *Engine) process(ev *Event) {
	now := stampOf(ev.Time)
	ip := ev.IP.Unmap()
	failures := 0
	if e.denied.tracksIP && ip.IsValid() {
		a16 := ip.As16()
		n := e.addrs.lookup(a16[:])
		if failure(ev.Outcome) {
			if n == nil {
				n = e.addrs.insert(string(a16[:]), now)
			}
			failures = n.val.add(now, e.denied.win)
		} else if n != nil {
			failures = n.val.estimate(now, e.denied.win)
		}
		if n != nil {
			e.addrs.touch(n, now)
		}
	}
	if ev.Subject == "" {
		return
	}
	if len(ev.Subject) > maxIDLen || len(ev.Issuer) > maxIDLen || len(ev.SessionID) > maxIDLen || len(ev.TokenID) > maxIDLen {
		e.m.ignored.Inc()
		return
	}

	sn := e.subject(ev.Issuer, ev.Subject, now)
	s := &sn.val
	if e.rate.enabled() {
		e.rate.observe(&s.rate, &s.scoring, now, e.rate.subject, "user")
	}
	if e.denied.enabled() {
		e.denied.observeSubject(&s.denied, &s.scoring, now, ev.Outcome)
	}
	if failures > 0 {
		e.denied.observeAddress(&s.scoring, now, ip, failures)
	}
	if e.travel.enabled() {
		e.travel.observe(&s.place, &s.scoring, now, ev, "user")
	}
	if e.newctx.enabled() {
		e.newctx.observe(&s.known, &s.scoring, now, s.firstSeen, ev)
	}
	if e.enum.enabled() {
		e.enum.observe(&s.enum, &s.scoring, now, ev)
	}

	switch {
	case ev.SessionID != "":
		ss := e.session(ev.Issuer, ev.SessionID, sn.key, now)
		x := &ss.val
		if e.rate.enabled() {
			e.rate.observe(&x.rate, &x.scoring, now, e.rate.session, "session")
		}
		if e.travel.enabled() {
			e.travel.observe(&x.place, &x.scoring, now, ev, "session")
		}
		if e.hijack.enabled() {
			e.hijack.observe(&x.fp, &x.scoring, now, ev, "session")
		}
		e.evaluate(&x.scoring, target{principal: PrincipalSession, key: ss.key, subject: sn.key}, now)
	case ev.TokenID != "" && e.hijack.enabled():
		// Without a session, the token itself is watched; findings count
		// against the user.
		tn := e.token(ev.Issuer, ev.TokenID, now)
		e.hijack.observe(&tn.val, &s.scoring, now, ev, "token")
	}
	e.evaluate(&s.scoring, target{principal: PrincipalUser, key: sn.key}, now)
}

// subject finds or creates a user's state.
func (e *Engine) subject(iss, sub string, now stamp) *node[subjectState] {
	e.kb = e.issuers.key(e.kb[:0], iss, sub)
	n := e.subjects.lookup(e.kb)
	if n != nil {
		e.subjects.touch(n, now)
		return n
	}
	n = e.subjects.insert(string(e.kb), now)
	n.val.firstSeen = now
	e.resume(&n.val.scoring, target{principal: PrincipalUser, key: n.key}, state.Query{Issuer: iss, Subject: sub}, now)
	return n
}

// session finds or creates a session's state.
func (e *Engine) session(iss, sid, subject string, now stamp) *node[sessionState] {
	e.kb = e.issuers.key(e.kb[:0], iss, sid)
	n := e.sessions.lookup(e.kb)
	if n != nil {
		e.sessions.touch(n, now)
		if n.val.subject != subject {
			// A session id presented by another user: keep following it,
			// under the latest user.
			n.val.subject = subject
		}
		return n
	}
	n = e.sessions.insert(string(e.kb), now)
	n.val.subject = subject
	e.resume(&n.val.scoring, target{principal: PrincipalSession, key: n.key, subject: subject}, state.Query{SessionID: sid}, now)
	return n
}

// token finds or creates the fingerprints of a token without a session.
func (e *Engine) token(iss, jti string, now stamp) *node[fingerprints] {
	e.kb = e.issuers.key(e.kb[:0], iss, jti)
	n := e.tokens.lookup(e.kb)
	if n != nil {
		e.tokens.touch(n, now)
		return n
	}
	return e.tokens.insert(string(e.kb), now)
}

// resume picks up a MEDIUM or HIGH level this engine recorded for a key
// before it restarted (or before the key was evicted): the level counts as
// a carried_over contribution that fades like any other, so that the
// level is lowered in time instead of staying in live state for ever.
func (e *Engine) resume(sc *scoring, t target, q state.Query, now stamp) {
	if e.state == nil {
		return
	}
	snap := e.state.Current()
	if snap == nil {
		return
	}
	r := snap.Facts(q).Risk
	lvl, ok := parseLevel(r.Level)
	if !ok || lvl == levelLow || len(r.Reasons) == 0 {
		return
	}
	for _, reason := range r.Reasons {
		if !ours(reason) {
			return
		}
	}
	at := stampOf(r.Time)
	sc.pubLevel, sc.pubScore, sc.pubAt = lvl, uint8(min(max(r.Score, 0), 100)), at
	p := e.rules.p[ruleCarryOver]
	c := contribution{rule: ruleCarryOver, points: sc.pubScore, at: at, expires: at.add(p.ttl),
		reason: truncate(fmt.Sprintf("carried_over: %s (score %d) recorded at %s: %s", lvl, r.Score, r.Time.UTC().Format(time.RFC3339), r.Reasons[0]), 512)}
	if now < c.expires {
		sc.put(c)
	}
	e.activate(sc, t)
}

// evaluate recomputes a key's score and level and queues a publication
// when the level changed, or the score moved by publish.score_delta at an
// unchanged MEDIUM or HIGH level (at most every publish.min_interval).
// Caller holds mu.
func (e *Engine) evaluate(sc *scoring, t target, now stamp) {
	sc.prune(now)
	score := sc.score(now, e.fade)
	lvl := levelOf(score, &e.cfg.Score)
	due := false
	switch {
	case lvl != sc.pubLevel:
		due = true
	case lvl != levelLow:
		d := score - int(sc.pubScore)
		due = (d >= e.cfg.Publish.ScoreDelta || -d >= e.cfg.Publish.ScoreDelta) &&
			now.since(sc.pubAt) >= uint32(e.cfg.Publish.MinInterval/time.Second)
	}
	pending := false
	if due {
		pending = !e.enqueue(sc, t, lvl, score, now)
	}
	if pending || sc.pubLevel != levelLow {
		e.activate(sc, t)
	} else if sc.active {
		sc.active = false
		delete(e.active, sc)
	}
}

// activate puts a key in the tick's re-evaluation set.
func (e *Engine) activate(sc *scoring, t target) {
	if !sc.active {
		sc.active = true
		e.active[sc] = t
	}
}

// enqueue hands a change to the publisher and records it as published
// (optimistically: a failure reverts it). It reports false when the
// change must wait (rate limit or full queue).
func (e *Engine) enqueue(sc *scoring, t target, lvl level, score int, now stamp) bool {
	if !e.limiter.AllowN(e.now(), 1) {
		e.m.publish("deferred")
		return false
	}
	c := Change{
		ID:            "risk:" + newID(),
		Principal:     t.principal,
		Level:         lvl.String(),
		PreviousLevel: sc.pubLevel.String(),
		Score:         score,
		Reasons:       sc.reasons(now, e.fade),
		Time:          now.time(),
	}
	switch t.principal {
	case PrincipalUser:
		c.Issuer, c.Subject = e.issuers.split(t.key)
	case PrincipalSession:
		c.Issuer, c.SessionID = e.issuers.split(t.key)
		_, c.Subject = e.issuers.split(t.subject)
	}
	job := pubJob{change: c, target: t, gen: sc.pubGen + 1, prev: published{sc.pubLevel, sc.pubScore, sc.pubAt}}
	select {
	case e.jobs <- job:
	default:
		e.m.publish("deferred")
		return false
	}
	sc.pubLevel, sc.pubScore, sc.pubAt, sc.pubGen = lvl, uint8(score), now, job.gen
	return true
}

// tick re-evaluates the active keys (scores fade) and evicts idle state.
func (e *Engine) tick(now stamp) {
	for sc, t := range e.active {
		e.evaluate(sc, t, now)
	}
	idle := seconds(e.cfg.Limits.IdleTTL)
	if now > stamp(idle) {
		cutoff := now - stamp(idle)
		// Bounded per tick so that a tick never stalls the engine; the
		// rest goes on the next ticks.
		const perTick = 100_000
		e.subjects.evictIdle(cutoff, perTick)
		e.sessions.evictIdle(cutoff, perTick)
		e.tokens.evictIdle(cutoff, perTick)
		e.addrs.evictIdle(cutoff, perTick)
	}
	e.m.tracked(e.subjects.len(), e.sessions.len(), e.tokens.len(), e.addrs.len(), len(e.active))
}

// failed reverts a publication the journal refused, so that a later tick
// tries again.
func (e *Engine) failed(f pubFailure) {
	var sc *scoring
	switch f.target.principal {
	case PrincipalUser:
		if n := e.subjects.get(f.target.key); n != nil {
			sc = &n.val.scoring
		}
	case PrincipalSession:
		if n := e.sessions.get(f.target.key); n != nil {
			sc = &n.val.scoring
		}
	}
	if sc == nil || sc.pubGen != f.gen {
		return // evicted, or published again since
	}
	sc.pubLevel, sc.pubScore, sc.pubAt = f.prev.level, f.prev.score, f.prev.at
	e.activate(sc, f.target)
}

// issuers interns token issuers: keys start with a 2-byte issuer index
// instead of the issuer URL, which saves tens of bytes per key.
type issuers struct {
	idx   map[string]uint16
	names []string
	// last is the most recently used issuer and its index: most events
	// come from one issuer, and comparing a string with itself is cheaper
	// than hashing it.
	last    string
	lastIdx uint16
	hasLast bool
}

// maxIssuers bounds interned issuers; keys of others carry the issuer in
// full (index overflowIssuer, then the issuer, NUL, the id).
const (
	maxIssuers     = 4096
	overflowIssuer = 0xffff
)

// key appends the key of (issuer, id) to b.
func (is *issuers) key(b []byte, iss, id string) []byte {
	if is.hasLast && iss == is.last {
		b = append(b, byte(is.lastIdx>>8), byte(is.lastIdx))
		return append(b, id...)
	}
	i, ok := is.idx[iss]
	if !ok && len(is.names) < maxIssuers {
		i = uint16(len(is.names))
		is.idx[iss] = i
		is.names = append(is.names, iss)
		ok = true
	}
	if ok {
		is.last, is.lastIdx, is.hasLast = iss, i, true
	}
	if !ok {
		b = append(b, overflowIssuer>>8, overflowIssuer&0xff)
		b = append(b, iss...)
		b = append(b, 0)
		return append(b, id...)
	}
	b = append(b, byte(i>>8), byte(i))
	return append(b, id...)
}

// split decodes a key into issuer and id.
func (is *issuers) split(k string) (iss, id string) {
	if len(k) < 2 {
		return "", ""
	}
	i := uint16(k[0])<<8 | uint16(k[1])
	if i == overflowIssuer {
		for j := 2; j < len(k); j++ {
			if k[j] == 0 {
				return k[2:j], k[j+1:]
			}
		}
		return k[2:], ""
	}
	if int(i) >= len(is.names) {
		return "", k[2:]
	}
	return is.names[i], k[2:]
}

// lookupKeys returns the keys id may have: under iss, or under every
// known issuer when iss is "". It never interns.
func (is *issuers) lookupKeys(iss, id string) []string {
	if iss != "" {
		if i, ok := is.idx[iss]; ok {
			return []string{string([]byte{byte(i >> 8), byte(i)}) + id}
		}
		return []string{string([]byte{overflowIssuer >> 8, overflowIssuer & 0xff}) + iss + "\x00" + id}
	}
	out := make([]string, 0, len(is.names))
	for i := range is.names {
		out = append(out, string([]byte{byte(i >> 8), byte(i)})+id)
	}
	return out
}

// quoteShort quotes untrusted text for a reason: printable ASCII, at most
// 64 characters.
func quoteShort(s string) string {
	return strconv.QuoteToASCII(truncate(s, 64))
}

// truncate cuts s to at most n bytes (at a character boundary) and marks
// the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
