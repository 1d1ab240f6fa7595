package identity

import (
	"sync"
	"time"
)

// cacheShards splits the cache so that concurrent requests rarely contend on
// one mutex. Keys are SHA-256 outputs, so the first byte spreads evenly.
const cacheShards = 16

// lru is a bounded, sharded least-recently-used cache keyed by SHA-256
// digests, with a per-entry expiry. Expired entries are never returned.
type lru[V any] struct {
	shards [cacheShards]lruShard[V]
}

type lruShard[V any] struct {
	mu    sync.Mutex
	cap   int
	items map[[32]byte]*lruEntry[V]
	// head is a sentinel of a circular list: head.next is the most recently
	// used entry, head.prev the least.
	head lruEntry[V]
}

type lruEntry[V any] struct {
	key        [32]byte
	val        V
	expires    time.Time
	prev, next *lruEntry[V]
}

// newLRU returns a cache holding at most size entries (at least one per
// shard).
func newLRU[V any](size int) *lru[V] {
	c := &lru[V]{}
	per := max(1, (size+cacheShards-1)/cacheShards)
	for i := range c.shards {
		s := &c.shards[i]
		s.cap = per
		s.items = make(map[[32]byte]*lruEntry[V])
		s.head.next = &s.head
		s.head.prev = &s.head
	}
	return c
}

func (c *lru[V]) shard(k [32]byte) *lruShard[V] {
	return &c.shards[k[0]%cacheShards]
}

// get returns the value for k if present and now is before its expiry.
func (c *lru[V]) get(k [32]byte, now time.Time) (V, bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	if !now.Before(e.expires) {
		s.unlink(e)
		delete(s.items, k)
		var zero V
		return zero, false
	}
	s.unlink(e)
	s.pushFront(e)
	return e.val, true
}

// add stores v under k until expires, evicting the least recently used
// entry of the shard when it is full.
func (c *lru[V]) add(k [32]byte, v V, expires time.Time) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[k]; ok {
		e.val, e.expires = v, expires
		s.unlink(e)
		s.pushFront(e)
		return
	}
	if len(s.items) >= s.cap {
		old := s.head.prev
		s.unlink(old)
		delete(s.items, old.key)
	}
	e := &lruEntry[V]{key: k, val: v, expires: expires}
	s.items[k] = e
	s.pushFront(e)
}

// remove drops k.
func (c *lru[V]) remove(k [32]byte) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[k]; ok {
		s.unlink(e)
		delete(s.items, k)
	}
}

// purge drops every entry.
func (c *lru[V]) purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.items)
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
