package identity

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// cacheShards splits the cache so that concurrent requests rarely contend on
// one mutex.
const cacheShards = 16

// lru is a bounded, sharded least-recently-used cache of values per raw
// token, with a per-entry expiry. Expired entries are never returned.
//
// Lookups are on the path of every request, so they do not hash the token
// with SHA-256: they use a keyed, per-cache maphash (fast, and not
// predictable from outside, so a caller cannot aim tokens at one shard or
// key) and then compare the stored token with the presented one byte for
// byte. Two tokens with the same maphash therefore never share an entry's
// value: the second one misses and, once verified, takes the slot over.
// Entries also record the token's SHA-256 (Token.RawHash) so that they can
// be dropped by it (Verifier.Forget).
type lru[V any] struct {
	keyOf  func(raw string) uint64 // maphash with the cache's seed; replaceable in tests
	shards [cacheShards]lruShard[V]
}

type lruShard[V any] struct {
	mu     sync.Mutex
	cap    int
	items  map[uint64]*lruEntry[V]
	byHash map[[32]byte]*lruEntry[V]
	// head is a sentinel of a circular list: head.next is the most recently
	// used entry, head.prev the least.
	head lruEntry[V]
}

type lruEntry[V any] struct {
	key        uint64
	raw        string   // the token itself, compared on every hit
	hash       [32]byte // SHA-256 of raw
	val        V
	expires    time.Time
	prev, next *lruEntry[V]
}

// newLRU returns a cache holding at most size entries (at least one per
// shard).
func newLRU[V any](size int) *lru[V] {
	seed := maphash.MakeSeed()
	c := &lru[V]{keyOf: func(raw string) uint64 { return maphash.String(seed, raw) }}
	per := max(1, (size+cacheShards-1)/cacheShards)
	for i := range c.shards {
		s := &c.shards[i]
		s.cap = per
		s.items = make(map[uint64]*lruEntry[V])
		s.byHash = make(map[[32]byte]*lruEntry[V])
		s.head.next = &s.head
		s.head.prev = &s.head
	}
	return c
}

// slot returns the key of raw and the shard that holds it.
func (c *lru[V]) slot(raw string) (uint64, *lruShard[V]) {
	k := c.keyOf(raw)
	return k, &c.shards[k%cacheShards]
}

// get returns the value for raw if present and now is before its expiry.
// It allocates nothing.
func (c *lru[V]) get(raw string, now time.Time) (V, bool) {
	k, s := c.slot(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[k]
	if !ok || e.raw != raw {
		var zero V
		return zero, false
	}
	if !now.Before(e.expires) {
		s.drop(e)
		var zero V
		return zero, false
	}
	s.unlink(e)
	s.pushFront(e)
	return e.val, true
}

// add stores v for raw (whose SHA-256 is hash) until expires, evicting the
// least recently used entry of the shard when it is full. An entry of
// another token with the same key is replaced.
func (c *lru[V]) add(raw string, hash [32]byte, v V, expires time.Time) {
	k, s := c.slot(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[k]; ok {
		if e.raw == raw {
			e.val, e.expires = v, expires
			s.unlink(e)
			s.pushFront(e)
			return
		}
		s.drop(e)
	}
	if len(s.items) >= s.cap {
		s.drop(s.head.prev)
	}
	// A copy, so that the entry does not keep the request's header alive.
	e := &lruEntry[V]{key: k, raw: strings.Clone(raw), hash: hash, val: v, expires: expires}
	s.items[k] = e
	s.byHash[hash] = e
	s.pushFront(e)
}

// remove drops the entry of raw.
func (c *lru[V]) remove(raw string) {
	k, s := c.slot(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[k]; ok && e.raw == raw {
		s.drop(e)
	}
}

// forget drops the entry of the token whose SHA-256 is hash. It looks in
// every shard: it is rare, lookups are not.
func (c *lru[V]) forget(hash [32]byte) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if e, ok := s.byHash[hash]; ok {
			s.drop(e)
		}
		s.mu.Unlock()
	}
}

// purge drops every entry.
func (c *lru[V]) purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.items)
		clear(s.byHash)
		s.head.next = &s.head
		s.head.prev = &s.head
		s.mu.Unlock()
	}
}

// len returns the number of entries, expired ones included.
func (c *lru[V]) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.items)
		s.mu.Unlock()
	}
	return n
}

// drop unlinks e and removes it from both indexes.
func (s *lruShard[V]) drop(e *lruEntry[V]) {
	s.unlink(e)
	delete(s.items, e.key)
	if s.byHash[e.hash] == e {
		delete(s.byHash, e.hash)
	}
}

func (s *lruShard[V]) unlink(e *lruEntry[V]) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *lruShard[V]) pushFront(e *lruEntry[V]) {
	e.prev = &s.head
	e.next = s.head.next
	s.head.next.prev = e
	s.head.next = e
}
