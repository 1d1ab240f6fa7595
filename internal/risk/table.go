package risk

import (
	"math"
	"time"
)

// stamp is a time in whole seconds since 2020-01-01 UTC. Per-key state
// keeps stamps instead of time.Time (4 bytes instead of 24) to stay small;
// detectors work at one-second resolution. The zero stamp means "never":
// stampOf never returns it.
type stamp uint32

const epochUnix = 1577836800 // 2020-01-01T00:00:00Z

func stampOf(t time.Time) stamp {
	s := t.Unix() - epochUnix
	switch {
	case s < 1:
		return 1
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return stamp(s)
}

// time returns the stamp as a UTC time (zero for the zero stamp).
func (s stamp) time() time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s)+epochUnix, 0).UTC()
}

// since is the number of seconds from earlier to s, 0 when earlier is
// later (events can arrive slightly out of order).
func (s stamp) since(earlier stamp) uint32 {
	if s <= earlier {
		return 0
	}
	return uint32(s - earlier)
}

// add returns s plus d seconds, saturating.
func (s stamp) add(d uint32) stamp {
	if uint64(s)+uint64(d) > math.MaxUint32 {
		return math.MaxUint32
	}
	return s + stamp(d)
}

// seconds converts a configured duration to whole seconds (at least 1).
func seconds(d time.Duration) uint32 {
	s := d / time.Second
	switch {
	case s < 1:
		return 1
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

// node is one key of a table, linked into its recency list.
type node[V any] struct {
	key        string
	prev, next *node[V]
	last       stamp // last seen
	val        V
}

// table is a map with least-recently-seen eviction: bounded by size (the
// oldest key goes when a new one would exceed max) and by age (evictIdle).
// Keys are strings so that lookups with a []byte key do not allocate. It is
// not safe for concurrent use.
type table[V any] struct {
	m          map[string]*node[V]
	head, tail *node[V] // head: most recently seen
	max        int
	// onEvict, when set, is called for every node removed.
	onEvict func(n *node[V], idle bool)
}

func newTable[V any](max int) *table[V] {
	return &table[V]{m: make(map[string]*node[V]), max: max}
}

func (t *table[V]) len() int { return len(t.m) }

// lookup finds a key given as bytes without allocating.
func (t *table[V]) lookup(k []byte) *node[V] { return t.m[string(k)] }

// get finds a key.
func (t *table[V]) get(k string) *node[V] { return t.m[k] }

// touch marks n as seen at now.
func (t *table[V]) touch(n *node[V], now stamp) {
	if now > n.last {
		n.last = now
	}
	if t.head == n {
		return
	}
	t.unlink(n)
	t.pushFront(n)
}

// insert adds a key that is not in the table, evicting the least recently
// seen keys while the table is full.
func (t *table[V]) insert(k string, now stamp) *node[V] {
	for len(t.m) >= t.max && t.tail != nil {
		t.remove(t.tail, false)
	}
	n := &node[V]{key: k, last: now}
	t.m[k] = n
	t.pushFront(n)
	return n
}

// evictIdle removes up to limit keys last seen before cutoff and reports
// how many it removed.
func (t *table[V]) evictIdle(cutoff stamp, limit int) int {
	removed := 0
	for t.tail != nil && t.tail.last < cutoff && removed < limit {
		t.remove(t.tail, true)
		removed++
	}
	return removed
}

func (t *table[V]) remove(n *node[V], idle bool) {
	t.unlink(n)
	delete(t.m, n.key)
	if t.onEvict != nil {
		t.onEvict(n, idle)
	}
}

func (t *table[V]) unlink(n *node[V]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else if t.head == n {
		t.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else if t.tail == n {
		t.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

func (t *table[V]) pushFront(n *node[V]) {
	n.next = t.head
	if t.head != nil {
		t.head.prev = n
	}
	t.head = n
	if t.tail == nil {
		t.tail = n
	}
}
