package identity

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

func key(i int) string { return "token-" + strconv.Itoa(i) }

func sum(raw string) [32]byte { return sha256.Sum256([]byte(raw)) }

// sameShard returns n distinct keys that c stores in one shard.
func sameShard(c *lru[int], n int) []string {
	_, want := c.slot(key(0))
	out := []string{key(0)}
	for i := 1; len(out) < n; i++ {
		if _, s := c.slot(key(i)); s == want {
			out = append(out, key(i))
		}
	}
	return out
}

func TestLRU(t *testing.T) {
	later := t0.Add(time.Hour)

	t.Run("entries are returned until they expire", func(t *testing.T) {
		c := newLRU[int](100)
		c.add(key(1), sum(key(1)), 1, t0.Add(time.Minute))
		if v, ok := c.get(key(1), t0); !ok || v != 1 {
			t.Errorf("get = %v, %v; want 1, true", v, ok)
		}
		if _, ok := c.get(key(1), t0.Add(time.Minute)); ok {
			t.Error("entry returned at its expiry")
		}
		if c.len() != 0 {
			t.Errorf("len = %d; want the expired entry dropped", c.len())
		}
	})
	t.Run("the cache never holds more than its size", func(t *testing.T) {
		c := newLRU[int](160)
		for i := range 10_000 {
			c.add(key(i), sum(key(i)), i, later)
		}
		if n := c.len(); n > 160 {
			t.Errorf("len = %d; want at most 160", n)
		}
	})
	t.Run("the least recently used entry of a full shard is evicted", func(t *testing.T) {
		c := newLRU[int](cacheShards) // one entry per shard
		ks := sameShard(c, 2)
		c.add(ks[0], sum(ks[0]), 1, later)
		c.add(ks[1], sum(ks[1]), 2, later)
		if _, ok := c.get(ks[0], t0); ok {
			t.Error("old entry survived in a full shard")
		}
		if v, ok := c.get(ks[1], t0); !ok || v != 2 {
			t.Errorf("new entry = %v, %v", v, ok)
		}
	})
	t.Run("a recently read entry survives eviction", func(t *testing.T) {
		c := newLRU[int](2 * cacheShards)
		same := sameShard(c, 3)
		c.add(same[0], sum(same[0]), 0, later)
		c.add(same[1], sum(same[1]), 1, later)
		c.get(same[0], t0) // same[1] is now least recently used
		c.add(same[2], sum(same[2]), 2, later)
		if _, ok := c.get(same[0], t0); !ok {
			t.Error("recently used entry evicted")
		}
		if _, ok := c.get(same[1], t0); ok {
			t.Error("least recently used entry survived")
		}
	})
	t.Run("adding an existing key replaces its value and expiry", func(t *testing.T) {
		c := newLRU[int](100)
		c.add(key(1), sum(key(1)), 1, t0.Add(time.Second))
		c.add(key(1), sum(key(1)), 2, later)
		if v, ok := c.get(key(1), t0.Add(time.Minute)); !ok || v != 2 || c.len() != 1 {
			t.Errorf("get = %v, %v (len %d); want 2, true, 1", v, ok, c.len())
		}
	})
	t.Run("remove, forget and purge drop entries", func(t *testing.T) {
		c := newLRU[int](100)
		for i := range 10 {
			c.add(key(i), sum(key(i)), i, later)
		}
		c.remove(key(3))
		if _, ok := c.get(key(3), t0); ok || c.len() != 9 {
			t.Errorf("after remove: present %v, len %d", ok, c.len())
		}
		c.forget(sum(key(4)))
		if _, ok := c.get(key(4), t0); ok || c.len() != 8 {
			t.Errorf("after forget: present %v, len %d", ok, c.len())
		}
		c.forget(sum("never cached")) // no effect
		c.purge()
		if c.len() != 0 {
			t.Errorf("len after purge = %d", c.len())
		}
		c.add(key(1), sum(key(1)), 1, later) // still usable
		if _, ok := c.get(key(1), t0); !ok {
			t.Error("cache unusable after purge")
		}
		c.forget(sum(key(1)))
		if _, ok := c.get(key(1), t0); ok {
			t.Error("forget after purge left the entry")
		}
	})
	t.Run("a token that collides with a cached one is not served its value", func(t *testing.T) {
		c := newLRU[int](100)
		c.keyOf = func(string) uint64 { return 7 } // every token collides
		c.add("a", sum("a"), 1, later)
		if v, ok := c.get("b", t0); ok {
			t.Fatalf("get(b) = %v from a's entry; want a miss", v)
		}
		c.remove("b") // must not drop a's entry
		if v, ok := c.get("a", t0); !ok || v != 1 {
			t.Fatalf("get(a) = %v, %v; want 1, true", v, ok)
		}
		c.add("b", sum("b"), 2, later) // takes the slot over
		if _, ok := c.get("a", t0); ok {
			t.Error("a still served after b took its slot")
		}
		if v, ok := c.get("b", t0); !ok || v != 2 || c.len() != 1 {
			t.Errorf("get(b) = %v, %v (len %d); want 2, true, 1", v, ok, c.len())
		}
		c.forget(sum("a")) // a's hash no longer names an entry
		if _, ok := c.get("b", t0); !ok {
			t.Error("forgetting a dropped b")
		}
	})
	t.Run("the cache keeps its own copy of the token", func(t *testing.T) {
		c := newLRU[int](100)
		raw := "Bearer token-x"[len("Bearer "):] // as cut from a header
		c.add(raw, sum(raw), 1, later)
		k, s := c.slot(raw)
		if e := s.items[k]; e == nil || e.raw != raw || unsafe.StringData(e.raw) == unsafe.StringData(raw) {
			t.Error("entry does not hold an equal copy of the token")
		}
	})
}

// BenchmarkLRUHit is the cache lookup of every request with a known token.
func BenchmarkLRUHit(b *testing.B) {
	c := newLRU[int](1000)
	raw := string(make([]byte, 600))
	c.add(raw, sum(raw), 1, t0.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.get(raw, t0); !ok {
			b.Fatal("miss")
		}
	}
}
