package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/replica/natstest"
	"github.com/vigil-authz/vigil/internal/state"
)

func revocation(id, sub string) state.Signal {
	return state.Signal{
		ID: id, Source: "admin", Kind: state.KindSessionRevoked,
		Subject: state.Subject{Format: "opaque", ID: sub},
	}
}

// TestCluster runs three replicas on a real three-node NATS cluster (cluster
// routes on loopback). Replica 3 reaches NATS only through a proxy the test
// can sever.
func TestCluster(t *testing.T) {
	nc := natstest.StartCluster(t, 3)
	proxy := natstest.NewProxy(t, strings.TrimPrefix(nc.ClientURL(2), "nats://"))
	const maxStaleness = time.Second
	urls := []string{
		nc.ClientURL(0) + "," + nc.ClientURL(1),
		nc.ClientURL(1) + "," + nc.ClientURL(0),
		proxy.URL(),
	}
	ms := make([]*member, 3)
	for i := range ms {
		start := time.Now()
		ms[i] = openMember(t, state.Config{NATSURL: urls[i], Replicas: 3},
			Config{Name: fmt.Sprintf("vigil-%d", i+1), MaxStaleness: maxStaleness, MaxWait: 10 * time.Second}) // generous: CI machines are slow; propagation speed is measured by the benchmark
		t.Logf("member %d in %s", i, time.Since(start))
	}
	for _, m := range ms {
		m.waitFresh(t, 10*time.Second)
	}
	ctx := context.Background()

	t.Run("a policy activated on replica 2 becomes active on all three", func(t *testing.T) {
		v, _, seq, err := ms[1].replica.Activate(ctx, permitOnly("alice", 1), "push")
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range ms {
			if err := m.replica.Await(ctx, engine.Consistency{PolicySeq: seq}); err != nil {
				t.Fatalf("replica %d: %v", i+1, err)
			}
			if a := m.policies.Active(); a == nil || a.ID != v.ID {
				t.Fatalf("replica %d active %v, want %s", i+1, a, v.ID)
			}
		}
	})
	t.Run("a signal published on replica 1 is applied on all three", func(t *testing.T) {
		seq, err := ms[0].state.Publish(ctx, revocation("r-1", "alice"))
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range ms {
			if err := m.replica.Await(ctx, engine.Consistency{StateSeq: seq}); err != nil {
				t.Fatalf("replica %d: %v", i+1, err)
			}
			if f := m.state.Current().Facts(state.Query{Subject: "alice"}); f.RevokedBefore.IsZero() {
				t.Fatalf("replica %d does not know the revocation", i+1)
			}
		}
	})
	t.Run("a replica cut off from NATS fails closed after max_staleness and catches up after reconnecting", func(t *testing.T) {
		cut := ms[2]
		proxy.Sever()
		cutAt := time.Now()
		// Changes the cut-off replica cannot see.
		seq, err := ms[0].state.Publish(ctx, revocation("r-2", "bob"))
		if err != nil {
			t.Fatal(err)
		}
		_, _, pseq, err := ms[0].replica.Activate(ctx, permitOnly("bob", 2), "push")
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the cut-off replica to turn stale", func() bool { return cut.replica.Stale() != nil })
		if since := time.Since(cutAt); since < maxStaleness/2 {
			t.Fatalf("stale after %s: within max_staleness it must keep serving", since)
		}
		if err := cut.replica.Stale(); !errors.Is(err, engine.ErrStale) {
			t.Fatalf("want ErrStale, got %v", err)
		}
		if cut.replica.Ready() == nil {
			t.Fatal("a stale replica must not be ready")
		}
		for i, m := range ms[:2] {
			if err := m.replica.Stale(); err != nil {
				t.Fatalf("replica %d must stay fresh: %v", i+1, err)
			}
		}
		proxy.Restore()
		cut.waitFresh(t, 20*time.Second)
		if cut.state.Seq() < seq || cut.replica.PolicySeq() < pseq {
			t.Fatalf("fresh but not caught up: state %d < %d or policy %d < %d", cut.state.Seq(), seq, cut.replica.PolicySeq(), pseq)
		}
		if f := cut.state.Current().Facts(state.Query{Subject: "bob"}); f.RevokedBefore.IsZero() {
			t.Fatal("the revocation made while cut off is missing")
		}
		if st := cut.replica.Status(); !st.Fresh || st.StateLag != 0 || st.PolicyLag != 0 || !st.Connected {
			t.Fatalf("status %+v", st)
		}
	})
}
