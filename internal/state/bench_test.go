package state

import (
	"context"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPublish measures journal appends that return only once applied
// (the freshness guarantee), one publisher at a time.
func BenchmarkPublish(b *testing.B) {
	s := openStore(b, testConfig(b.TempDir()))
	ctx := context.Background()
	now := time.Now()
	i := 0
	for b.Loop() {
		sub := fmt.Sprintf("bench-%d", i)
		if _, err := s.Publish(ctx, revokeUser(sub, sub, now)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signals/s")
}

// BenchmarkPublishParallel measures throughput with concurrent publishers
// (e.g. many transmitters pushing at once).
func BenchmarkPublishParallel(b *testing.B) {
	s := openStore(b, testConfig(b.TempDir()))
	ctx := context.Background()
	now := time.Now()
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sub := fmt.Sprintf("bench-%d", n.Add(1))
			if _, err := s.Publish(ctx, revokeUser(sub, sub, now)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signals/s")
}

// populated returns a builder tracking n users, each revoked.
func populated(n int) *builder {
	bl := newBuilder(maphash.MakeSeed(), 48*time.Hour)
	now := time.Now()
	for i := range n {
		sig := Signal{ID: "x", Source: "admin", Kind: KindSessionRevoked, EventTime: now,
			Subject: Subject{Format: FormatIssSub, Iss: idp, Sub: fmt.Sprintf("user-%07d", i)}}
		_ = bl.apply(&sig, uint64(i+1), now)
	}
	return bl
}

const benchSubjects = 1_000_000

func BenchmarkFacts(b *testing.B) {
	snap := populated(benchSubjects).freeze()
	iat := time.Now().Add(-time.Hour)
	b.Run("miss", func(b *testing.B) {
		q := Query{Issuer: idp, Subject: "nobody", Email: "nobody@example.com", SessionID: "s-1", TokenID: "t-1", DeviceID: "d-1", IssuedAt: iat}
		b.ReportAllocs()
		for b.Loop() {
			f := snap.Facts(q)
			if !f.RevokedBefore.IsZero() {
				b.Fatal("hit")
			}
		}
	})
	b.Run("hit", func(b *testing.B) {
		q := Query{Issuer: idp, Subject: "user-0424242", Email: "u@example.com", SessionID: "s-1", TokenID: "t-1", DeviceID: "d-1", IssuedAt: iat}
		b.ReportAllocs()
		for b.Loop() {
			f := snap.Facts(q)
			if f.RevokedBefore.IsZero() {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkApplyAtScale measures one signal applied and a new snapshot
// swapped in while a million subjects are tracked: copy-on-write copies
// the touched shard only.
func BenchmarkApplyAtScale(b *testing.B) {
	bl := populated(benchSubjects)
	bl.freeze()
	now := time.Now()
	seq := uint64(benchSubjects)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		seq++
		sig := Signal{ID: "x", Source: "admin", Kind: KindSessionRevoked, EventTime: now,
			Subject: Subject{Format: FormatIssSub, Iss: idp, Sub: fmt.Sprintf("user-%07d", i%benchSubjects)}}
		if err := bl.apply(&sig, seq, now); err != nil {
			b.Fatal(err)
		}
		bl.freeze()
		i += 7919
	}
}

// BenchmarkMemoryPerSubject reports the heap held per tracked subject.
func BenchmarkMemoryPerSubject(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		snap := populated(benchSubjects).freeze()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(snap.Len()), "bytes/subject")
		runtime.KeepAlive(snap)
	}
}
