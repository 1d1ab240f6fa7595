package replica

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/state"
)

func TestBundleEncoding(t *testing.T) {
	tests := []struct {
		name string
		b    policy.Bundle
	}{
		{"a one-file bundle round-trips", bundle(`permit(principal, action, resource);`)},
		{"bytes that are not UTF-8 round-trip exactly", policy.Bundle{Files: []policy.File{{Name: "a.cedar", Data: []byte{0xff, 0xfe, 'x', 0}}}}},
		{"an empty bundle round-trips", policy.Bundle{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(toStored(tt.b))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeBundle(data)
			if err != nil {
				t.Fatal(err)
			}
			if got.Hash() != tt.b.Hash() || len(got.Files) != len(tt.b.Files) {
				t.Fatalf("hash %s, want %s", got.Hash(), tt.b.Hash())
			}
			for i := range got.Files {
				if !bytes.Equal(got.Files[i].Data, tt.b.Files[i].Data) {
					t.Fatalf("file %d differs", i)
				}
			}
		})
	}
	t.Run("an inline bundle that does not match its version is refused", func(t *testing.T) {
		rec := activation{Version: "0123456789abcdef", Bundle: toStored(bundle("permit(principal, action, resource);"))}
		if _, err := inlineBundle(rec); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Fatalf("got %v", err)
		}
	})
}

func FuzzDecodeBundle(f *testing.F) {
	seed, _ := json.Marshal(toStored(bundle(`permit(principal, action, resource);`)))
	f.Add(seed)
	f.Add([]byte(`{"files":[{"name":"a","data":"!!"}]}`))
	f.Add([]byte(`{"files":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBundle(data)
		if err != nil {
			return
		}
		if len(b.Files) > policy.MaxFiles {
			t.Fatalf("%d files accepted", len(b.Files))
		}
		_ = b.Hash()
	})
}

func TestValidVersion(t *testing.T) {
	for id, want := range map[string]bool{
		"0123456789abcdef": true, "ab": true, "": false, "ABCDEF": false,
		"../etc": false, strings.Repeat("a", 65): false, "0123-4567": false,
	} {
		if got := validVersion(id); got != want {
			t.Errorf("validVersion(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"the defaults are valid", Config{}, ""},
		{"a tiny staleness bound is refused", Config{MaxStaleness: time.Millisecond}, "max_staleness"},
		{"a wait beyond a minute is refused", Config{MaxWait: 2 * time.Minute}, "max_wait"},
		{"a very long name is refused", Config{Name: strings.Repeat("n", 200)}, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.SetDefaults()
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
	t.Run("the probe interval stays well inside the bound", func(t *testing.T) {
		for _, d := range []time.Duration{100 * time.Millisecond, time.Second, 15 * time.Second, time.Hour} {
			c := Config{MaxStaleness: d}
			if p := c.probeInterval(); p > d/5 || p > time.Second {
				t.Fatalf("max_staleness %s: probe every %s", d, p)
			}
		}
	})
}

// TestLargeBundles checks the object-store path taken by bundles too large
// to travel inside their activation record.
func TestLargeBundles(t *testing.T) {
	sc := state.Config{DataDir: t.TempDir()}
	m := openMember(t, sc, Config{Name: "solo"})
	ctx := context.Background()
	// Many small entities: well over the inline limit, well under the
	// policy limits.
	var ents strings.Builder
	ents.WriteString("[")
	for i := range 6000 {
		if i > 0 {
			ents.WriteString(",")
		}
		ents.WriteString(`{"uid":{"type":"User","id":"user-` + strings.Repeat("x", 20) + `-` + strconv.Itoa(i) + `"},"attrs":{},"parents":[]}`)
	}
	ents.WriteString("]")
	big := policy.Bundle{Files: []policy.File{
		{Name: "main.cedar", Data: []byte(`permit(principal, action, resource);`)},
		{Name: "users.entities.json", Data: []byte(ents.String())},
	}}
	if ents.Len() <= inlineLimit {
		t.Fatalf("test bundle is only %d bytes", ents.Len())
	}
	v, _, _, err := m.replica.Activate(ctx, big, "push")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.replica.plog.obj.GetInfo(ctx, v.ID); err != nil {
		t.Fatalf("a large bundle must be in the object store: %v", err)
	}
	small, _, _, err := m.replica.Activate(ctx, permitOnly("alice", 1), "push")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.replica.plog.obj.GetInfo(ctx, small.ID); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("a small bundle travels inline, not in the object store: %v", err)
	}
	// A restarted replica rolls back to both from the log alone.
	m.close()
	m2 := openMember(t, sc, Config{Name: "solo"})
	for _, id := range []string{v.ID, small.ID, v.ID} {
		if _, _, _, err := m2.replica.Rollback(ctx, id); err != nil {
			t.Fatalf("rollback to %s: %v", id, err)
		}
		if m2.policies.Active().ID != id {
			t.Fatalf("active %s, want %s", m2.policies.Active().ID, id)
		}
	}
}

// TestUnappliableActivation checks that a replica that cannot apply an
// activation the cluster recorded stays behind and fails closed, and
// recovers with the next good activation.
func TestUnappliableActivation(t *testing.T) {
	m := openMember(t, state.Config{DataDir: t.TempDir()}, Config{Name: "solo", MaxStaleness: 200 * time.Millisecond})
	ctx := context.Background()
	if _, _, _, err := m.replica.Activate(ctx, permitOnly("alice", 1), "push"); err != nil {
		t.Fatal(err)
	}
	m.waitFresh(t, 5*time.Second)
	// A record naming a bundle nobody stored.
	raw, _ := json.Marshal(activation{Version: "00000000deadbeef", Source: "push", Origin: "elsewhere", At: time.Now()})
	msg := nats.NewMsg(PolicySubject)
	msg.Data = raw
	ack, err := m.state.JetStream().PublishMsg(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the replica to fail closed", func() bool { return m.replica.Stale() != nil })
	err = m.replica.Stale()
	if !errors.Is(err, engine.ErrStale) || !strings.Contains(err.Error(), "00000000deadbeef") {
		t.Fatalf("stale error should name the activation: %v", err)
	}
	if m.replica.PolicySeq() >= ack.Sequence {
		t.Fatal("an activation that was not applied must not count as applied")
	}
	if _, _, _, err := m.replica.Activate(ctx, permitOnly("bob", 2), "push"); err != nil {
		t.Fatal(err)
	}
	m.waitFresh(t, 5*time.Second)
}

// TestFreshnessAfterDeletedRecords checks that records deleted from the
// journal (superseded or expired) do not keep a replica from proving it is
// fresh: the last journal sequence may name a record that no longer
// exists.
func TestFreshnessAfterDeletedRecords(t *testing.T) {
	sc := state.Config{DataDir: t.TempDir()}
	m := openMember(t, sc, Config{Name: "solo", MaxStaleness: 500 * time.Millisecond})
	ctx := context.Background()
	seq, err := m.state.Publish(ctx, revocation("r-1", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	last, err := m.state.Publish(ctx, revocation("r-2", "bob"))
	if err != nil {
		t.Fatal(err)
	}
	m.close()
	// Delete the newest record, as expiry would, then restart: the replay
	// ends below the stream's last sequence.
	sc.SetDefaults()
	st, err := state.Open(ctx, sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	strm, err := st.JetStream().Stream(ctx, state.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := strm.DeleteMsg(ctx, last); err != nil {
		t.Fatal(err)
	}
	st.Close()
	m2 := openMember(t, sc, Config{Name: "solo", MaxStaleness: 500 * time.Millisecond})
	m2.waitFresh(t, 5*time.Second)
	if m2.state.Seq() < seq || m2.state.Seq() >= last {
		t.Fatalf("replayed to %d; want the surviving record %d", m2.state.Seq(), seq)
	}
	if st := m2.replica.Status(); st.StateLag != 0 {
		t.Fatalf("a deleted record counts as lag: %+v", st)
	}
}
