package replica

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/state"
)

// TestSingleNode runs the replication path on the embedded server: a
// cluster of one.
func TestSingleNode(t *testing.T) {
	dir := t.TempDir()
	sc := state.Config{DataDir: dir}
	cc := Config{Name: "solo"}
	ctx := context.Background()

	m := openMember(t, sc, cc)
	m.waitFresh(t, 5*time.Second)
	if m.policies.Active() != nil {
		t.Fatal("an empty log activates nothing")
	}

	var v1, v2 *policy.Version
	t.Run("an activation is applied before Activate returns", func(t *testing.T) {
		v, changed, seq, err := m.replica.Activate(ctx, permitOnly("alice", 1), "push")
		if err != nil || !changed || seq == 0 {
			t.Fatalf("%v %v %d", err, changed, seq)
		}
		if a := m.policies.Active(); a == nil || a.ID != v.ID || m.replica.PolicySeq() < seq {
			t.Fatalf("active %v, policy seq %d < %d", a, m.replica.PolicySeq(), seq)
		}
		v1 = v
	})
	t.Run("the same bundle again changes nothing and publishes nothing", func(t *testing.T) {
		before := m.replica.PolicySeq()
		v, changed, seq, err := m.replica.Activate(ctx, permitOnly("alice", 1), "push")
		if err != nil || changed || v.ID != v1.ID || seq != before {
			t.Fatalf("%v %v %d %d", err, changed, seq, before)
		}
	})
	t.Run("a bundle that does not compile is rejected and not published", func(t *testing.T) {
		before := m.replica.PolicySeq()
		_, _, _, err := m.replica.Activate(ctx, bundle("permit(principal,"), "push")
		var ce *policy.CompileError
		if !errors.As(err, &ce) {
			t.Fatalf("want a compile error, got %v", err)
		}
		if m.replica.PolicySeq() != before || m.policies.Active().ID != v1.ID {
			t.Fatal("a rejected bundle must not be published")
		}
		if r := m.policies.LastRejected(); r == nil || r.Source != "push" {
			t.Fatalf("rejection not recorded: %+v", r)
		}
	})
	t.Run("a rollback re-activates an earlier version", func(t *testing.T) {
		v, _, _, err := m.replica.Activate(ctx, permitOnly("bob", 2), "push")
		if err != nil {
			t.Fatal(err)
		}
		v2 = v
		rv, changed, _, err := m.replica.Rollback(ctx, v1.ID)
		if err != nil || !changed || rv.ID != v1.ID || m.policies.Active().ID != v1.ID {
			t.Fatalf("%v %v %v", err, changed, rv)
		}
	})
	t.Run("a rollback to an unknown version is refused", func(t *testing.T) {
		for _, id := range []string{"0123456789abcdef", "not-a-version", ""} {
			if _, _, _, err := m.replica.Rollback(ctx, id); !errors.Is(err, policy.ErrUnknownVersion) {
				t.Fatalf("%q: %v", id, err)
			}
		}
	})
	t.Run("a directory bundle already recorded by the log is not published again", func(t *testing.T) {
		d := permitOnly("carol", 3)
		v, changed, seq, err := m.replica.PublishDir(ctx, d, "dir:/etc/vigil/policies")
		if err != nil || !changed {
			t.Fatalf("%v %v", err, changed)
		}
		if _, _, _, err := m.replica.Activate(ctx, permitOnly("dave", 4), "push"); err != nil {
			t.Fatal(err)
		}
		_, changed, seq2, err := m.replica.PublishDir(ctx, d, "dir:/etc/vigil/policies")
		if err != nil || changed || seq2 <= seq {
			t.Fatalf("%v %v %d %d", err, changed, seq, seq2)
		}
		if m.policies.Active().ID == v.ID {
			t.Fatal("an unchanged directory must not undo a later push")
		}
	})
	t.Run("read-your-writes waits for a sequence and gives up after max_wait", func(t *testing.T) {
		if err := m.replica.Await(ctx, engine.Consistency{PolicySeq: m.replica.PolicySeq(), StateSeq: m.state.Seq()}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := m.replica.Await(ctx, engine.Consistency{PolicySeq: m.replica.PolicySeq() + 100})
		if !errors.Is(err, engine.ErrBehind) {
			t.Fatalf("want ErrBehind, got %v", err)
		}
		if time.Since(start) < DefaultMaxWait/2 {
			t.Fatal("Await must wait before giving up")
		}
	})
	t.Run("a restarted replica replays the log to its latest version", func(t *testing.T) {
		want := m.policies.Active().ID
		m.close()
		m2 := openMember(t, sc, cc)
		if a := m2.policies.Active(); a == nil || a.ID != want {
			t.Fatalf("restored %v, want %s", a, want)
		}
		if len(m2.policies.History()) != 1 {
			t.Fatalf("replay must compile only the latest version, history %d", len(m2.policies.History()))
		}
		m2.waitFresh(t, 5*time.Second)
		// Versions no longer in the local history come from the bundle store.
		if _, _, _, err := m2.replica.Rollback(ctx, v2.ID); err != nil || m2.policies.Active().ID != v2.ID {
			t.Fatalf("rollback after restart: %v", err)
		}
	})
}
