package server

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// BenchmarkClusterPropagation measures cross-replica propagation on a real
// three-node NATS cluster with three Vigil replicas (each connected to its
// own NATS node, streams replicated three times), all in this process on
// loopback, while background clients keep every replica busy with AuthZEN
// batches and gateway requests.
//
// For each change it records the time from the start of the admin API call
// on the origin replica (they rotate) to the moment each of the two other
// replicas has swapped in the snapshot that contains it (live state for a
// signal, the policy version for a push). The next change starts once both
// have it. Figures are reported as p50/p99 over all samples (two per
// change), plus the origin's acknowledgement latency.
//
//	go test -run '^$' -bench ClusterPropagation -benchtime 500x ./internal/server/
func BenchmarkClusterPropagation(b *testing.B) {
	vc := newVigilCluster(b)
	rs := make([]*replicaProc, 3)
	for i := range rs {
		url := vc.nats.ClientURL(i)
		rs[i] = vc.start(vc.config(fmt.Sprintf("vigil-%d", i+1), url, 0))
	}
	for _, r := range rs {
		r.waitReady(b, 30*time.Second)
	}
	watch := make([]*applied, len(rs))
	for i, r := range rs {
		watch[i] = watchApplied(b, r)
	}
	tok := vc.mint("background")
	bg := startLoad(6, func(w int) error {
		r := rs[w%len(rs)]
		if w%2 == 0 {
			_, _, err := vc.evaluate(r, nil)
			return err
		}
		resp, err := vc.gatewayGet(r, tok, nil)
		if err == nil && resp.status != 200 {
			err = fmt.Errorf("%s gateway: %d", r.name, resp.status)
		}
		return err
	})
	defer bg.end(b)

	b.Run("signals", func(b *testing.B) {
		var lag, ack []time.Duration
		for i := range b.N {
			origin := i % len(rs)
			start := time.Now()
			seq, err := vc.revoke(rs[origin], fmt.Sprintf("bench-user-%d-%d", b.N, i))
			if err != nil {
				b.Fatal(err)
			}
			ack = append(ack, time.Since(start))
			for j := range rs {
				if j == origin {
					continue
				}
				at, ok := watch[j].seqTime(seq, 10*time.Second)
				if !ok {
					b.Fatalf("%s never applied seq %d", rs[j].name, seq)
				}
				lag = append(lag, max(at.Sub(start), 0))
			}
		}
		report(b, "signal", lag, ack)
	})
	b.Run("policies", func(b *testing.B) {
		var lag, ack []time.Duration
		for i := range b.N {
			origin := i % len(rs)
			src := clusterAlice
			if i%2 == 1 {
				src = clusterBob
			}
			start := time.Now()
			id, _, err := vc.push(rs[origin], src+fmt.Sprintf("\n// bench %d %d", b.N, i))
			if err != nil {
				b.Fatal(err)
			}
			ack = append(ack, time.Since(start))
			for j := range rs {
				if j == origin {
					continue
				}
				at, ok := watch[j].versionTime(id, 10*time.Second)
				if !ok {
					b.Fatalf("%s never activated %s", rs[j].name, id)
				}
				lag = append(lag, max(at.Sub(start), 0))
			}
		}
		report(b, "policy", lag, ack)
	})
}

// report adds p50/p99 of the propagation lags and acknowledgement times as
// benchmark metrics (milliseconds).
func report(b *testing.B, what string, lag, ack []time.Duration) {
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(percentile(lag, 50)), what+"-lag-p50-ms")
	b.ReportMetric(ms(percentile(lag, 99)), what+"-lag-p99-ms")
	b.ReportMetric(ms(slices.Max(lag)), what+"-lag-max-ms")
	b.ReportMetric(ms(percentile(ack, 50)), what+"-ack-p50-ms")
	b.ReportMetric(ms(percentile(ack, 99)), what+"-ack-p99-ms")
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
