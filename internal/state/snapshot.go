package state

import (
	"hash/maphash"
	"maps"
	"time"
)

// The index is split into shards: a change copies only the shards it
// touches (a few hundred entries each at a million subjects), never the
// whole index, and a snapshot shares every untouched shard with its
// predecessor.
const (
	shardBits = 12
	numShards = 1 << shardBits
	// maxConds bounds the complex-subject variants recorded under one key
	// that Publish admits.
	maxConds = 64
)

// stateFact is a stateful fact: it holds until a newer signal replaces it.
// seq is the journal record that set it.
type stateFact struct {
	at      int64 // event time, Unix nanoseconds
	seq     uint64
	on      bool // disabled: account disabled; device: compliant
	why     string
	level   string // risk
	score   int    // risk
	reasons []string
}

func newer(at int64, seq uint64, than *stateFact) bool {
	return at > than.at || (at == than.at && seq > than.seq)
}

type assuranceFact struct {
	at               int64
	namespace, level string
}

type claimFact struct {
	at    int64
	value any
}

// factSet is everything recorded for one subject (or one complex-subject
// variant). It is immutable once it is part of a snapshot.
type factSet struct {
	revokedAt  int64 // Unix nanoseconds; 0 = nothing revoked
	revokedWhy string
	disabled   *stateFact
	purged     *stateFact
	device     *stateFact
	risk       *stateFact // from identity providers and operators
	riskOwn    *stateFact // from Vigil's own risk engine (Source "risk")
	assurance  *assuranceFact
	claims     map[string]claimFact
}

func (f *factSet) empty() bool {
	return f.revokedAt == 0 && f.disabled == nil && f.purged == nil && f.device == nil &&
		f.risk == nil && f.riskOwn == nil && f.assurance == nil && len(f.claims) == 0
}

// condFacts are facts recorded for a complex subject under its primary key,
// applying only to requests that meet cond.
type condFacts struct {
	key   string
	cond  []constraint
	facts *factSet
}

// entry is what one index key holds. Immutable once in a snapshot.
type entry struct {
	base  *factSet
	conds []condFacts
}

// Snapshot is an immutable view of the live state at journal sequence Seq.
// It is safe for concurrent use; readers never block writers.
type Snapshot struct {
	seq    uint64
	count  int
	seed   maphash.Seed
	shards *[numShards]map[string]*entry
}

// Seq is the journal sequence of the last signal applied.
func (s *Snapshot) Seq() uint64 {
	if s == nil {
		return 0
	}
	return s.seq
}

// Len is the number of tracked index keys (subjects, sessions, tokens,
// devices...).
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return s.count
}

func (s *Snapshot) lookup(k []byte) *entry {
	m := s.shards[maphash.Bytes(s.seed, k)&(numShards-1)]
	if m == nil {
		return nil
	}
	return m[string(k)]
}

// Facts returns the live state that applies to a request. A request that
// matches nothing costs a few map lookups and no allocation.
func (s *Snapshot) Facts(q Query) Facts {
	if s == nil {
		return Facts{}
	}
	f := Facts{Seq: s.seq}
	if s.count == 0 {
		return f
	}
	var rk requestKeys
	rk.init(&q)
	var m merger
	m.issuedAt = 0
	if !q.IssuedAt.IsZero() {
		m.issuedAt = q.IssuedAt.UnixNano()
	}
	for i := 0; i < rk.n; i++ {
		e := s.lookup(rk.key(i))
		if e == nil {
			continue
		}
		if e.base != nil {
			m.add(e.base)
		}
		for ci := range e.conds {
			c := &e.conds[ci]
			ok := true
			for _, con := range c.cond {
				if !rk.has(con) {
					ok = false
					break
				}
			}
			if ok {
				m.add(c.facts)
			}
		}
	}
	m.finish(&f)
	return f
}

// merger combines the fact sets a request matches.
type merger struct {
	issuedAt   int64
	revokedAt  int64
	revokedWhy string
	disabled   *stateFact
	purged     *stateFact
	device     *stateFact
	risk       *stateFact
	assurance  *assuranceFact
	claims     map[string]claimFact
}

func (m *merger) add(fs *factSet) {
	if fs.revokedAt > m.revokedAt {
		m.revokedAt, m.revokedWhy = fs.revokedAt, fs.revokedWhy
	}
	if d := fs.disabled; d != nil && (m.disabled == nil || newer(d.at, d.seq, m.disabled)) {
		m.disabled = d
	}
	if fs.purged != nil && m.purged == nil {
		m.purged = fs.purged
	}
	if d := fs.device; d != nil && (m.device == nil || newer(d.at, d.seq, m.device)) {
		m.device = d
	}
	// Each source class keeps its own risk (so that the risk engine lowering
	// its own level never clears a level an identity provider raised); the
	// highest of them applies.
	for _, r := range [2]*stateFact{fs.risk, fs.riskOwn} {
		if r == nil {
			continue
		}
		if m.risk == nil {
			m.risk = r
		} else if a, b := riskRank(r.level), riskRank(m.risk.level); a > b || (a == b && newer(r.at, r.seq, m.risk)) {
			m.risk = r
		}
	}
	if a := fs.assurance; a != nil && (m.assurance == nil || a.at > m.assurance.at) {
		m.assurance = a
	}
	for name, c := range fs.claims {
		if m.issuedAt != 0 && m.issuedAt >= c.at {
			continue // the token was issued after the change and carries it
		}
		if m.claims == nil {
			m.claims = make(map[string]claimFact, len(fs.claims))
		}
		if old, ok := m.claims[name]; !ok || c.at > old.at {
			m.claims[name] = c
		}
	}
}

func (m *merger) finish(f *Facts) {
	if m.revokedAt != 0 {
		f.RevokedBefore = time.Unix(0, m.revokedAt).UTC()
		f.RevokedReason = m.revokedWhy
	}
	if m.purged != nil {
		f.Purged = true
		f.AccountReason = m.purged.why
	}
	if m.disabled != nil && m.disabled.on {
		f.Disabled = true
		if !f.Purged {
			f.AccountReason = m.disabled.why
		}
	}
	if m.device != nil {
		c := m.device.on
		f.DeviceCompliant = &c
		f.DeviceTime = time.Unix(0, m.device.at).UTC()
	}
	if m.risk != nil {
		f.Risk = RiskFact{
			Score:   m.risk.score,
			Level:   m.risk.level,
			Reasons: m.risk.reasons,
			Time:    time.Unix(0, m.risk.at).UTC(),
		}
	}
	if m.assurance != nil {
		f.Assurance = &Assurance{
			Namespace: m.assurance.namespace,
			Level:     m.assurance.level,
			Time:      time.Unix(0, m.assurance.at).UTC(),
		}
	}
	if m.claims != nil {
		f.ClaimOverrides = make(map[string]any, len(m.claims))
		for k, c := range m.claims {
			f.ClaimOverrides[k] = c.value
		}
	}
}

// builder produces successive snapshots. It is owned by one goroutine.
// Shards copied since the last freeze are owned by the builder and are
// modified in place; the others are shared with published snapshots and
// copied on first write.
type builder struct {
	seed      maphash.Seed
	retention time.Duration
	shards    [numShards]map[string]*entry
	owned     [numShards]bool
	count     int
	seq       uint64
	dirty     bool

	// refs counts, per journal record of a stateful kind, the facts it
	// currently sets. A record that sets none is superseded and can be
	// deleted from the journal (garbage).
	refs    map[uint64]int32
	garbage []uint64
}

func newBuilder(seed maphash.Seed, retention time.Duration) *builder {
	return &builder{seed: seed, retention: retention, refs: make(map[uint64]int32)}
}

func (b *builder) shardOf(k string) uint64 {
	return maphash.String(b.seed, k) & (numShards - 1)
}

func (b *builder) get(k string) *entry {
	m := b.shards[b.shardOf(k)]
	if m == nil {
		return nil
	}
	return m[k]
}

func (b *builder) writable(i uint64) map[string]*entry {
	if !b.owned[i] {
		m := maps.Clone(b.shards[i])
		if m == nil {
			m = make(map[string]*entry)
		}
		b.shards[i] = m
		b.owned[i] = true
	}
	b.dirty = true
	return b.shards[i]
}

func (b *builder) put(k string, e *entry) {
	i := b.shardOf(k)
	m := b.writable(i)
	_, had := m[k]
	switch {
	case e == nil && had:
		delete(m, k)
		b.count--
	case e != nil:
		m[k] = e
		if !had {
			b.count++
		}
	}
	if len(m) == 0 {
		b.shards[i] = nil
		b.owned[i] = false
	}
}

// freeze publishes the builder's state as a snapshot.
func (b *builder) freeze() *Snapshot {
	shards := new([numShards]map[string]*entry)
	*shards = b.shards
	b.owned = [numShards]bool{}
	b.dirty = false
	return &Snapshot{seq: b.seq, count: b.count, seed: b.seed, shards: shards}
}

// newKeys counts the targets that would create index keys or variants.
func (s *Snapshot) newKeys(ts []target) (keys int, fullKey bool) {
	for _, t := range ts {
		var e *entry
		if s != nil && s.shards != nil {
			e = s.lookup([]byte(t.key))
		}
		if e == nil {
			keys++
			continue
		}
		if t.condKey != "" && len(e.conds) >= maxConds {
			found := false
			for _, c := range e.conds {
				if c.key == t.condKey {
					found = true
					break
				}
			}
			if !found {
				fullKey = true
			}
		}
	}
	return keys, fullKey
}

// apply records a journalled signal. It never fails: a record that cannot
// be matched (it passed Validate when published, so only a foreign or
// corrupted record) is reported and skipped by the caller. Transient facts
// already older than the retention are not recorded.
func (b *builder) apply(sig *Signal, seq uint64, now time.Time) error {
	if seq > b.seq {
		b.seq = seq
	}
	b.dirty = true
	principal := ""
	if sig.Risk != nil {
		principal = sig.Risk.Principal
	}
	ts, err := targets(sig.Kind, principal, sig.Subject)
	if err != nil {
		return err
	}
	at := sig.EventTime.UnixNano()
	if !sig.Kind.Stateful() && at < now.Add(-b.retention).UnixNano() {
		return nil
	}
	took := 0
	for _, t := range ts {
		old := b.get(t.key)
		var ne entry
		if old != nil {
			ne = *old
		}
		var fs factSet
		ci := -1
		if t.condKey == "" {
			if ne.base != nil {
				fs = *ne.base
			}
		} else {
			for i := range ne.conds {
				if ne.conds[i].key == t.condKey {
					ci = i
					fs = *ne.conds[i].facts
					break
				}
			}
		}
		took += b.applyFacts(&fs, sig, seq, at)
		if t.condKey == "" {
			ne.base = &fs
		} else {
			conds := make([]condFacts, len(ne.conds), len(ne.conds)+1)
			copy(conds, ne.conds)
			if ci >= 0 {
				conds[ci].facts = &fs
			} else {
				conds = append(conds, condFacts{key: t.condKey, cond: t.cond, facts: &fs})
			}
			ne.conds = conds
		}
		b.put(t.key, &ne)
	}
	if sig.Kind.Stateful() && took == 0 {
		b.garbage = append(b.garbage, seq)
	}
	return nil
}

// applyFacts merges one signal into fs and reports how many stateful facts
// the record now sets.
func (b *builder) applyFacts(fs *factSet, sig *Signal, seq uint64, at int64) int {
	switch sig.Kind {
	case KindSessionRevoked, KindCredentialChange, KindCredentialCompromise, KindCredentialChangeRequired:
		if at > fs.revokedAt {
			fs.revokedAt, fs.revokedWhy = at, sig.describe()
		}
	case KindAccountDisabled, KindAccountEnabled:
		return b.take(&fs.disabled, &stateFact{at: at, seq: seq, on: sig.Kind == KindAccountDisabled, why: sig.describe()})
	case KindAccountPurged:
		if fs.purged == nil {
			return b.take(&fs.purged, &stateFact{at: at, seq: seq, on: true, why: sig.describe()})
		}
	case KindDeviceComplianceChange:
		return b.take(&fs.device, &stateFact{at: at, seq: seq, on: *sig.Compliant})
	case KindRiskLevelChange:
		score := defaultScore(sig.Risk.Level)
		if sig.Risk.Score != nil {
			score = *sig.Risk.Score
		}
		slot := &fs.risk
		if sig.Source == SourceRisk {
			slot = &fs.riskOwn
		}
		return b.take(slot, &stateFact{at: at, seq: seq, level: sig.Risk.Level, score: score, reasons: sig.Risk.Reasons})
	case KindAssuranceLevelChange:
		if fs.assurance == nil || at > fs.assurance.at {
			fs.assurance = &assuranceFact{at: at, namespace: sig.Namespace, level: sig.CurrentLevel}
		}
	case KindTokenClaimsChange:
		claims := make(map[string]claimFact, len(fs.claims)+len(sig.Claims))
		for k, v := range fs.claims {
			claims[k] = v
		}
		for k, v := range sig.Claims {
			if old, ok := claims[k]; !ok || at >= old.at {
				claims[k] = claimFact{at: at, value: v}
			}
		}
		fs.claims = claims
	}
	return 0
}

// take installs nf in slot if it is newer than what the slot holds.
func (b *builder) take(slot **stateFact, nf *stateFact) int {
	old := *slot
	if old != nil && !newer(nf.at, nf.seq, old) {
		return 0
	}
	if old != nil {
		b.release(old.seq)
	}
	*slot = nf
	b.refs[nf.seq]++
	return 1
}

func (b *builder) release(seq uint64) {
	b.refs[seq]--
	if b.refs[seq] <= 0 {
		delete(b.refs, seq)
		b.garbage = append(b.garbage, seq)
	}
}

// takeGarbage returns and forgets the superseded journal records.
func (b *builder) takeGarbage() []uint64 {
	g := b.garbage
	b.garbage = nil
	return g
}

// sweep drops transient facts older than the retention from shards
// [from, to) and reports how many index keys it removed.
func (b *builder) sweep(now time.Time, from, to int) int {
	cutoff := now.Add(-b.retention).UnixNano()
	removed := 0
	for i := from; i < to && i < numShards; i++ {
		m := b.shards[i]
		if m == nil {
			continue
		}
		var changes map[string]*entry
		for k, e := range m {
			ne, changed := expireEntry(e, cutoff)
			if !changed {
				continue
			}
			if changes == nil {
				changes = make(map[string]*entry)
			}
			changes[k] = ne
		}
		for k, ne := range changes {
			if ne == nil {
				removed++
			}
			b.put(k, ne)
		}
	}
	return removed
}

// expireEntry returns e without facts older than cutoff (nil when nothing
// is left) and whether anything changed.
func expireEntry(e *entry, cutoff int64) (*entry, bool) {
	changed := false
	ne := *e
	if e.base != nil {
		if fs, ch := expireFacts(e.base, cutoff); ch {
			ne.base, changed = fs, true
		}
	}
	var conds []condFacts
	for i, c := range e.conds {
		fs, ch := expireFacts(c.facts, cutoff)
		if !ch {
			if conds != nil {
				conds = append(conds, c)
			}
			continue
		}
		if conds == nil {
			conds = make([]condFacts, 0, len(e.conds))
			conds = append(conds, e.conds[:i]...)
		}
		changed = true
		if fs != nil {
			c.facts = fs
			conds = append(conds, c)
		}
	}
	if !changed {
		return e, false
	}
	if conds != nil {
		ne.conds = conds
		if len(conds) == 0 {
			ne.conds = nil
		}
	}
	if ne.base == nil && len(ne.conds) == 0 {
		return nil, true
	}
	return &ne, true
}

func expireFacts(fs *factSet, cutoff int64) (*factSet, bool) {
	expired := (fs.revokedAt != 0 && fs.revokedAt < cutoff) ||
		(fs.assurance != nil && fs.assurance.at < cutoff)
	for _, c := range fs.claims {
		if c.at < cutoff {
			expired = true
			break
		}
	}
	if !expired {
		return fs, false
	}
	n := *fs
	if n.revokedAt != 0 && n.revokedAt < cutoff {
		n.revokedAt, n.revokedWhy = 0, ""
	}
	if n.assurance != nil && n.assurance.at < cutoff {
		n.assurance = nil
	}
	if len(n.claims) > 0 {
		claims := make(map[string]claimFact, len(n.claims))
		for k, c := range n.claims {
			if c.at >= cutoff {
				claims[k] = c
			}
		}
		n.claims = claims
		if len(claims) == 0 {
			n.claims = nil
		}
	}
	if n.empty() {
		return nil, true
	}
	return &n, true
}
