package replica

import (
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/state"
)

// BenchmarkStale measures the freshness check every decision makes.
//
//	go test -run '^$' -bench Stale ./internal/replica/
func BenchmarkStale(b *testing.B) {
	m := openMember(b, state.Config{DataDir: b.TempDir()}, Config{Name: "bench"})
	m.waitFresh(b, 5*time.Second)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if m.replica.Stale() != nil {
				b.Fatal("stale")
			}
		}
	})
}
