package identity

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
)

func key(i int) [32]byte { return sha256.Sum256([]byte(strconv.Itoa(i))) }

func TestLRU(t *testing.T) {
	later := t0.Add(time.Hour)

	t.Run("entries are returned until they expire", func(t *testing.T) {
		c := newLRU[int](100)
		c.add(key(1), 1, t0.Add(time.Minute))
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
			c.add(key(i), i, later)
		}
		if n := c.len(); n > 160 {
			t.Errorf("len = %d; want at most 160", n)
		}
	})
	t.Run("the least recently used entry of a full shard is evicted", func(t *testing.T) {
		c := newLRU[int](cacheShards) // one entry per shard
		a := key(1)
		var b [32]byte
		for i := 2; ; i++ { // find another key in a's shard
			if b = key(i); b[0]%cacheShards == a[0]%cacheShards {
				break
			}
		}
		c.add(a, 1, later)
		c.add(b, 2, later)
		if _, ok := c.get(a, t0); ok {
			t.Error("old entry survived in a full shard")
		}
		if v, ok := c.get(b, t0); !ok || v != 2 {
			t.Errorf("new entry = %v, %v", v, ok)
		}
	})
	t.Run("a recently read entry survives eviction", func(t *testing.T) {
		c := newLRU[int](2 * cacheShards)
		var same [][32]byte
		for i := 0; len(same) < 3; i++ {
			if k := key(i); k[0]%cacheShards == 0 {
				same = append(same, k)
			}
		}
		c.add(same[0], 0, later)
		c.add(same[1], 1, later)
		c.get(same[0], t0) // same[1] is now least recently used
		c.add(same[2], 2, later)
		if _, ok := c.get(same[0], t0); !ok {
			t.Error("recently used entry evicted")
		}
		if _, ok := c.get(same[1], t0); ok {
			t.Error("least recently used entry survived")
		}
	})
	t.Run("adding an existing key replaces its value and expiry", func(t *testing.T) {
		c := newLRU[int](100)
		c.add(key(1), 1, t0.Add(time.Second))
		c.add(key(1), 2, later)
		if v, ok := c.get(key(1), t0.Add(time.Minute)); !ok || v != 2 || c.len() != 1 {
			t.Errorf("get = %v, %v (len %d); want 2, true, 1", v, ok, c.len())
		}
	})
	t.Run("remove and purge drop entries", func(t *testing.T) {
		c := newLRU[int](100)
		for i := range 10 {
			c.add(key(i), i, later)
		}
		c.remove(key(3))
		if _, ok := c.get(key(3), t0); ok || c.len() != 9 {
			t.Errorf("after remove: present %v, len %d", ok, c.len())
		}
		c.purge()
		if c.len() != 0 {
			t.Errorf("len after purge = %d", c.len())
		}
		c.add(key(1), 1, later) // still usable
		if _, ok := c.get(key(1), t0); !ok {
			t.Error("cache unusable after purge")
		}
	})
}
