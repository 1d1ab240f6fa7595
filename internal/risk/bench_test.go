package risk

import (
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// benchEvent is a realistic event of user i: located, with a device, a
// user agent, a session and a token.
func benchEvent(i int, at time.Time, withSession bool) Event {
	e := Event{
		Time: at, Outcome: Allowed, Issuer: "https://login.example.com", Subject: "user-" + strconv.Itoa(i),
		IP:      netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
		Country: "DE", Latitude: 52.52, Longitude: 13.405, AccuracyKM: 20, Located: true,
		DeviceID:  "device-" + strconv.Itoa(i%1000),
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		Action:    "GET /todos/{id}", ResourceType: "Todo", ResourceID: strconv.Itoa(i % 5000),
	}
	if withSession {
		e.SessionID = "sid-" + strconv.Itoa(i)
		e.TokenID = "jti-" + strconv.Itoa(i)
	}
	return e
}

// BenchmarkSubjectMemory measures the engine's memory per tracked user:
// one million distinct users, one request each, heap in use before and
// after (run with -benchtime 1x; skipped with -short).
func BenchmarkSubjectMemory(b *testing.B) {
	if testing.Short() {
		b.Skip("one million users take a few seconds")
	}
	const n = 1_000_000
	for _, tc := range []struct {
		name    string
		session bool
	}{{"user_only", false}, {"user_with_session", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var perKey float64
			for b.Loop() {
				e, _, _ := testEngine(b, func(c *Config) {
					c.Limits.Subjects, c.Limits.Sessions = 2*n, 2*n
				})
				before := heapInUse()
				e.mu.Lock()
				for i := range n {
					ev := benchEvent(i, t0.Add(time.Duration(i)*time.Millisecond), tc.session)
					e.process(&ev)
				}
				e.mu.Unlock()
				after := heapInUse()
				if e.subjects.len() != n {
					b.Fatalf("%d subjects tracked", e.subjects.len())
				}
				perKey = float64(after-before) / n
				runtime.KeepAlive(e)
			}
			b.ReportMetric(perKey, "B/user")
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkProcess is the engine goroutine's cost per event: a working set
// of users, each with a session, making ordinary requests.
func BenchmarkProcess(b *testing.B) {
	for _, users := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			e, _, _ := testEngine(b, nil)
			evs := make([]Event, 4096)
			for i := range evs {
				evs[i] = benchEvent(i*7919%users, t0, true)
			}
			b.ReportAllocs()
			i := 0
			e.mu.Lock()
			defer e.mu.Unlock()
			for b.Loop() {
				ev := evs[i%len(evs)]
				ev.Time = t0.Add(time.Duration(i) * 10 * time.Millisecond)
				e.process(&ev)
				i++
			}
		})
	}
}

// BenchmarkObserve is the request path's cost: handing one event over.
func BenchmarkObserve(b *testing.B) {
	e, _, _ := testEngine(b, nil)
	ev := benchEvent(1, t0, true)
	b.ReportAllocs()
	for b.Loop() {
		e.Observe(ev)
		select { // keep the queue from filling: measure the send, not the drop
		case <-e.events:
		default:
		}
	}
}
