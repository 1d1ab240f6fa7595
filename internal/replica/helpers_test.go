package replica

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/state"
)

// member is one replica under test: its live state, policy store and
// Replica.
type member struct {
	state    *state.Store
	policies *policy.Store
	replica  *Replica
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("VIGIL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// openMember opens live state on sc (an embedded data_dir or a nats_url)
// and a Replica on top. It is closed when the test ends.
func openMember(t testing.TB, sc state.Config, cc Config) *member {
	t.Helper()
	sc.SetDefaults()
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := testLogger(t).With("replica", cc.Name)
	st, err := state.Open(ctx, sc, log)
	if err != nil {
		t.Fatal(err)
	}
	ps := policy.NewStore(policy.StoreOptions{})
	r, err := Open(ctx, Options{Config: cc, State: st, Policies: ps, Replicas: sc.Replicas, Log: log})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	m := &member{state: st, policies: ps, replica: r}
	t.Cleanup(m.close)
	if err := r.WaitReplayed(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *member) close() {
	m.replica.Close()
	m.state.Close()
}

// waitFresh waits until the member proves it is fresh.
func (m *member) waitFresh(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := m.replica.Ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not fresh after %s: %v", m.replica.Name(), timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// bundle is a one-file policy bundle.
func bundle(src string) policy.Bundle {
	return policy.Bundle{Files: []policy.File{{Name: "main.cedar", Data: []byte(src)}}}
}

func permitOnly(user string, n int) policy.Bundle {
	return bundle(fmt.Sprintf("@id(%q) permit(principal == User::%q, action, resource); // %d", user+"-only", user, n))
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
