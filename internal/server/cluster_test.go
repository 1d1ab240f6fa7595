package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/replica/natstest"
)

// TestCluster runs three Vigil replicas on a real three-node NATS cluster
// (nats-server with cluster routes, all on loopback) and checks that they
// behave as one: changes made on one replica are enforced on the others,
// policy swaps never mix versions, a NATS node failure does not interrupt
// service, a restarted replica catches up before it is ready, and a replica
// cut off from NATS fails closed once it can no longer prove it is fresh.
//
// Replicas 1 and 2 connect to NATS nodes 1 and 2; replica 3 reaches NATS
// node 3 only through a proxy the test can sever.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster and three replicas")
	}
	vc := newVigilCluster(t)
	proxy := natstest.NewProxy(t, strings.TrimPrefix(vc.nats.ClientURL(2), "nats://"))
	urls := []string{
		vc.nats.ClientURL(0) + "," + vc.nats.ClientURL(1),
		vc.nats.ClientURL(1) + "," + vc.nats.ClientURL(0),
		proxy.URL(),
	}
	// Replicas start together, racing to create the streams.
	rs := make([]*replicaProc, 3)
	var wg sync.WaitGroup
	for i := range rs {
		wg.Go(func() {
			name := fmt.Sprintf("vigil-%d", i+1)
			rs[i] = vc.start(vc.config(name, urls[i], 0))
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, r := range rs {
		r.waitReady(t, 20*time.Second)
	}
	watch := make([]*applied, len(rs))
	for i, r := range rs {
		watch[i] = watchApplied(t, r)
	}
	versionA := rs[0].Store().Active().ID
	for _, r := range rs[1:] {
		if r.Store().Active().ID != versionA {
			t.Fatalf("%s started with %s, %s with %s", rs[0].name, versionA, r.name, r.Store().Active().ID)
		}
	}

	t.Run("a revocation sent to replica 1 is enforced on replicas 2 and 3", func(t *testing.T) {
		tok := vc.mint("mallory")
		for _, r := range rs {
			if resp, err := vc.gatewayGet(r, tok, nil); err != nil || resp.status != 200 {
				t.Fatalf("%s before the revocation: %v %d", r.name, err, resp.status)
			}
		}
		sent := time.Now()
		seq, err := vc.revoke(rs[0], "mallory")
		if err != nil {
			t.Fatal(err)
		}
		// Read-your-writes: with the sequence, every replica enforces it
		// on the very next request.
		for _, r := range rs {
			resp, err := vc.gatewayGet(r, tok, minSeq(seq))
			if err != nil || resp.status != 401 {
				t.Fatalf("%s after the revocation with %s: %v %d %s", r.name, "X-Vigil-Min-Seq", err, resp.status, resp.body)
			}
		}
		for i, r := range rs[1:] {
			at, _ := watch[i+1].seqTime(seq, time.Second)
			t.Logf("%s applied the revocation %s after it was sent to %s", r.name, at.Sub(sent).Round(time.Microsecond), rs[0].name)
		}
	})

	t.Run("AuthZEN explanations carry the sequences a decision was made at", func(t *testing.T) {
		seq := rs[0].State().Seq()
		_, out, err := vc.evaluate(rs[1], minSeq(seq))
		if err != nil {
			t.Fatal(err)
		}
		v := out.Evaluations[0].Context.Vigil
		if v.StateSeq < seq || v.PolicySeq == 0 || v.PolicyVersion != versionA {
			t.Fatalf("explanation %+v, want state_seq >= %d and a policy_seq", v, seq)
		}
	})

	t.Run("a policy pushed to replica 2 becomes active on all three under load without a failed or mixed decision", func(t *testing.T) {
		seen := make([]map[string]bool, len(rs))
		var mu sync.Mutex
		l := startLoad(6, func(w int) error {
			r := rs[w%len(rs)]
			v, _, err := vc.evaluate(r, nil)
			if err != nil {
				return err
			}
			mu.Lock()
			if seen[w%len(rs)] == nil {
				seen[w%len(rs)] = map[string]bool{}
			}
			seen[w%len(rs)][v] = true
			mu.Unlock()
			return nil
		})
		time.Sleep(100 * time.Millisecond)
		valid := map[string]bool{versionA: true}
		for i := range 6 {
			src := clusterBob
			if i%2 == 1 {
				src = clusterAlice
			}
			id, pseq, err := vc.push(rs[1], src+fmt.Sprintf("\n// push %d", i))
			if err != nil {
				t.Fatal(err)
			}
			valid[id] = true
			for _, r := range rs {
				v, _, err := vc.evaluate(r, minPolicySeq(pseq))
				if err != nil || v != id {
					t.Fatalf("%s after push %d with X-Vigil-Min-Policy-Seq %d: version %q, want %q: %v", r.name, i, pseq, v, id, err)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		l.end(t)
		for i, vs := range seen {
			for v := range vs {
				if !valid[v] {
					t.Fatalf("%s decided with version %s, which was never pushed", rs[i].name, v)
				}
			}
		}
	})

	t.Run("with one NATS node killed every replica keeps serving and changes still reach all of them", func(t *testing.T) {
		tok := vc.mint("nina")
		l := startLoad(6, func(w int) error {
			r := rs[w%len(rs)]
			if w%2 == 0 {
				_, _, err := vc.evaluate(r, nil)
				return err
			}
			resp, err := vc.gatewayGet(r, tok, nil)
			if err != nil {
				return err
			}
			if resp.status != 200 && resp.status != 401 {
				return fmt.Errorf("%s gateway: %d %s", r.name, resp.status, resp.body)
			}
			return nil
		})
		time.Sleep(100 * time.Millisecond)
		vc.nats.Kill(0)
		killed := time.Now()
		// The admin API may refuse while NATS elects new leaders; retry.
		var seq uint64
		for {
			s, err := vc.revoke(rs[1], "nina")
			if err == nil {
				seq = s
				break
			}
			if time.Since(killed) > 20*time.Second {
				t.Fatalf("no revocation accepted 20s after the node failure: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, r := range rs {
			for {
				resp, err := vc.gatewayGet(r, tok, minSeq(seq))
				if err == nil && resp.status == 401 {
					break
				}
				if time.Since(killed) > 30*time.Second {
					t.Fatalf("%s does not enforce the revocation 30s after the node failure: %v %d", r.name, err, resp.status)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		t.Logf("revocation enforced on every replica %s after the node failure", time.Since(killed).Round(time.Millisecond))
		l.end(t)
		vc.nats.Restart(0)
	})

	t.Run("a replica killed and restarted catches up before it reports ready", func(t *testing.T) {
		rs[2].stop()
		var seq uint64
		for i := range 20 {
			s, err := vc.revoke(rs[0], fmt.Sprintf("olga-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			seq = s
		}
		id, pseq, err := vc.push(rs[1], clusterBob+"\n// while replica 3 was down")
		if err != nil {
			t.Fatal(err)
		}
		// Replica 3 comes back with a short staleness bound for the next
		// test.
		cfg := rs[2].cfg
		cfg.Cluster.MaxStaleness = time.Second
		r3 := vc.start(cfg)
		rs[2] = r3
		for {
			resp, err := vc.do("GET", r3.adminURL+"/readyz", nil, "")
			if err != nil {
				t.Fatal(err)
			}
			var body readiness
			if err := json.Unmarshal(resp.body, &body); err != nil || body.Replica == nil {
				t.Fatalf("readyz: %s", resp.body)
			}
			if resp.status == 200 {
				if body.Replica.StateSeq < seq || body.Replica.PolicySeq < pseq || body.PolicyVersion != id {
					t.Fatalf("ready before catching up: %s (want state_seq >= %d, policy_seq >= %d, version %s)", resp.body, seq, pseq, id)
				}
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	t.Run("a replica cut off from NATS fails closed after max_staleness and serves again once it has caught up", func(t *testing.T) {
		r3 := rs[2]
		r3.waitReady(t, 10*time.Second)
		tok := vc.mint("paul")
		if resp, err := vc.gatewayGet(r3, tok, nil); err != nil || resp.status != 200 {
			t.Fatalf("before: %v %d", err, resp.status)
		}
		proxy.Sever()
		cut := time.Now()
		// A change replica 3 cannot see.
		if _, err := vc.revoke(rs[0], "paul"); err != nil {
			t.Fatal(err)
		}
		// Within the bound it keeps serving from its last state; then the
		// gateway and AuthZEN answer 503.
		var gw response
		for {
			var err error
			gw, err = vc.gatewayGet(r3, tok, nil)
			if err != nil {
				t.Fatal(err)
			}
			if gw.status == 503 {
				break
			}
			if time.Since(cut) > 10*time.Second {
				t.Fatalf("still answering %d 10s after being cut off", gw.status)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if since := time.Since(cut); since < r3.cfg.Cluster.MaxStaleness/2 {
			t.Fatalf("failed closed after %s, well within max_staleness", since)
		}
		if ct := gw.header.Get("Content-Type"); ct != "application/problem+json" || gw.header.Get("Retry-After") == "" {
			t.Fatalf("gateway 503: %q %q %s", ct, gw.header.Get("Retry-After"), gw.body)
		}
		var se *statusError
		if _, _, err := vc.evaluate(r3, nil); !errors.As(err, &se) || se.status != 503 {
			t.Fatalf("AuthZEN while cut off: %v", err)
		}
		if resp, _ := vc.do("GET", r3.adminURL+"/readyz", nil, ""); resp.status != 503 || !strings.Contains(string(resp.body), "cannot prove") {
			t.Fatalf("readyz while cut off: %d %s", resp.status, resp.body)
		}
		for _, r := range rs[:2] {
			if err := r.Ready(); err != nil {
				t.Fatalf("%s must stay ready: %v", r.name, err)
			}
		}

		proxy.Restore()
		restored := time.Now()
		// The first answer that is not 503 must already know the
		// revocation made while it was cut off.
		var codes []int
		for {
			resp, err := vc.gatewayGet(r3, tok, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.status != 503 {
				if resp.status != 401 {
					t.Fatalf("first answer after reconnecting: %d %s", resp.status, resp.body)
				}
				break
			}
			if len(codes) == 0 || codes[len(codes)-1] != resp.status {
				codes = append(codes, resp.status)
			}
			if time.Since(restored) > 30*time.Second {
				t.Fatal("not serving 30s after reconnecting")
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("cut off for %s; serving again %s after reconnecting", restored.Sub(cut).Round(time.Millisecond), time.Since(restored).Round(time.Millisecond))
		if _, _, err := vc.evaluate(r3, nil); err != nil {
			t.Fatal(err)
		}
		_ = slices.Contains(codes, 503)
	})
}
