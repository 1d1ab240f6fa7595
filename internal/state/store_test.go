package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testConfig(dir string) Config {
	cfg := Config{DataDir: dir}
	cfg.SetDefaults()
	return cfg
}

func openStore(t testing.TB, cfg Config, opts ...Option) *Store {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg, testLogger(t), opts...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("wait ready: %v", err)
	}
	return s
}

func publish(t testing.TB, s *Store, sig Signal) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seq, err := s.Publish(ctx, sig)
	if err != nil {
		t.Fatalf("publish %s: %v", sig.ID, err)
	}
	return seq
}

func revokeUser(id, sub string, at time.Time) Signal {
	return Signal{
		ID: id, Source: "admin", Kind: KindSessionRevoked, EventTime: at,
		Subject: Subject{Format: FormatIssSub, Iss: "https://idp.example", Sub: sub},
		Reason:  "test",
	}
}

func userQuery(sub string) Query {
	return Query{Issuer: "https://idp.example", Subject: sub, IssuedAt: time.Now().Add(-time.Hour)}
}

func TestStorePublishIsVisibleOnReturn(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	seq := publish(t, s, revokeUser("r1", "alice", time.Now()))
	if seq == 0 {
		t.Fatal("publish returned sequence 0")
	}
	f := s.Current().Facts(userQuery("alice"))
	if deny, _, _ := f.Guard(time.Now().Add(-time.Hour)); !deny {
		t.Fatalf("token issued before the revocation is allowed: %+v", f)
	}
	if f.Seq < seq {
		t.Fatalf("facts from seq %d, published %d", f.Seq, seq)
	}
	if deny, _, _ := f.Guard(time.Now().Add(time.Minute)); deny {
		t.Fatal("token issued after the revocation is denied")
	}
}

func TestStoreDeduplicatesByID(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	first := publish(t, s, revokeUser("dup", "alice", time.Now()))
	again := publish(t, s, revokeUser("dup", "alice", time.Now()))
	if again != first {
		t.Fatalf("duplicate got seq %d, original %d", again, first)
	}
	info, err := s.strm.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("journal holds %d records, want 1", info.State.Msgs)
	}
}

func TestStoreRejectsInvalidSignals(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	tests := []struct {
		name string
		sig  Signal
	}{
		{"a signal without ID", Signal{Kind: KindSessionRevoked, Subject: issSub("a")}},
		{"an ignored kind", Signal{ID: "x", Kind: KindIgnored, Subject: issSub("a")}},
		{"a subject without format", Signal{ID: "x", Kind: KindSessionRevoked}},
		{"a device change without status", Signal{ID: "x", Kind: KindDeviceComplianceChange, Subject: issSub("a")}},
		{"a risk change with an unknown level", Signal{ID: "x", Kind: KindRiskLevelChange, Subject: issSub("a"), Risk: &RiskChange{Level: "SEVERE"}}},
		{"a credential creation", Signal{ID: "x", Kind: KindCredentialChange, ChangeType: "create", Subject: issSub("a")}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is rejected", func(t *testing.T) {
			if _, err := s.Publish(context.Background(), tt.sig); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestStoreClampsFutureEventTimes(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := openStore(t, testConfig(t.TempDir()), WithClock(func() time.Time { return now }))
	publish(t, s, revokeUser("future", "alice", now.Add(24*time.Hour)))
	if got := s.Current().Facts(userQuery("alice")).RevokedBefore; !got.Equal(now) {
		t.Fatalf("RevokedBefore = %v, want clamped to %v", got, now)
	}
}

func TestStoreRebuildsStateOnRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := openStore(t, cfg)
	const n = 500
	for i := range n {
		publish(t, s, revokeUser(fmt.Sprintf("r%d", i), fmt.Sprintf("user-%d", i), time.Now()))
	}
	publish(t, s, Signal{ID: "dis", Source: "admin", Kind: KindAccountDisabled, EventTime: time.Now(), Subject: issSub("carol")})
	lastSeq := s.Seq()
	s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s2, err := Open(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	// Ready must not be reported before the replay has applied everything.
	for !s2.Ready() {
		time.Sleep(time.Millisecond)
	}
	snap := s2.Current()
	if snap.Seq() < lastSeq {
		t.Fatalf("ready at seq %d before replaying to %d", snap.Seq(), lastSeq)
	}
	for i := range n {
		if snap.Facts(userQuery(fmt.Sprintf("user-%d", i))).RevokedBefore.IsZero() {
			t.Fatalf("revocation %d lost on restart", i)
		}
	}
	if !snap.Facts(Query{Issuer: idp, Subject: "carol"}).Disabled {
		t.Fatal("disabled account lost on restart")
	}
}

func TestStoreSeesPublishedSignalsUnderConcurrentReads(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	var regress atomic.Bool
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				f := s.Current().Facts(userQuery("reader"))
				if f.Seq < last {
					regress.Store(true)
				}
				last = f.Seq
				reads.Add(1)
				runtime.Gosched()
			}
		}()
	}
	const rounds = 200
	for i := range rounds {
		sub := fmt.Sprintf("fresh-%d", i)
		publish(t, s, revokeUser("f"+sub, sub, time.Now()))
		// A decision starting now, on any goroutine, must see it.
		seen := make(chan bool)
		go func() { seen <- !s.Current().Facts(userQuery(sub)).RevokedBefore.IsZero() }()
		if !<-seen {
			close(stop)
			t.Fatalf("round %d: signal not visible after Publish returned", i)
		}
	}
	close(stop)
	wg.Wait()
	if regress.Load() {
		t.Fatal("a reader saw the sequence go backwards")
	}
	t.Logf("%d concurrent reads", reads.Load())
}

func TestStoreCapsTrackedSubjects(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxSubjects = 2
	s := openStore(t, cfg)
	publish(t, s, revokeUser("a", "a", time.Now()))
	publish(t, s, revokeUser("b", "b", time.Now()))
	if _, err := s.Publish(context.Background(), revokeUser("c", "c", time.Now())); !errors.Is(err, ErrCapacity) {
		t.Fatalf("third subject: err = %v, want ErrCapacity", err)
	}
	publish(t, s, revokeUser("a2", "a", time.Now())) // known subject: still accepted
}

func TestStoreDeletesSupersededStatefulRecords(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	now := time.Now()
	for i := range 5 {
		kind := KindAccountDisabled
		if i%2 == 1 {
			kind = KindAccountEnabled
		}
		publish(t, s, Signal{ID: fmt.Sprint(i), Source: "admin", Kind: kind, EventTime: now.Add(time.Duration(i) * time.Second), Subject: issSub("alice")})
	}
	if !s.Current().Facts(Query{Issuer: idp, Subject: "alice"}).Disabled {
		t.Fatal("last signal (disable) not in force")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		info, err := s.strm.Info(ctx)
		if err != nil {
			t.Fatalf("journal never compacted: %v", err)
		}
		if info.State.Msgs == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStoreSurvivesKill runs a child process that publishes a signal and
// kills itself with SIGKILL as soon as Publish returns. The signal must be
// in force when the parent reopens the same data_dir.
func TestStoreSurvivesKill(t *testing.T) {
	if dir := os.Getenv("VIGIL_STATE_KILL_CHILD"); dir != "" {
		cfg := testConfig(dir)
		ctx := context.Background()
		s, err := Open(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := s.WaitReady(ctx); err != nil {
			os.Exit(2)
		}
		if _, err := s.Publish(ctx, revokeUser("killed", "mallory", time.Now())); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreSurvivesKill$")
	cmd.Env = append(os.Environ(), "VIGIL_STATE_KILL_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	s := openStore(t, testConfig(dir))
	if s.Current().Facts(userQuery("mallory")).RevokedBefore.IsZero() {
		t.Fatal("acknowledged signal lost after kill -9")
	}
}

// TestStoreWithExternalNATS runs a NATS server with a loopback port and
// connects through nats_url: the same code path as a shared cluster.
func TestStoreWithExternalNATS(t *testing.T) {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(t.TempDir(), "js"),
		Authorization: "s3cret", NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	cfg := Config{NATSURL: srv.ClientURL(), NATS: NATSConfig{Token: "s3cret"}}
	cfg.SetDefaults()
	a := openStore(t, cfg)
	b := openStore(t, cfg) // a second replica on the same journal
	seq := publish(t, a, revokeUser("ext", "dave", time.Now()))
	if a.Current().Facts(userQuery("dave")).RevokedBefore.IsZero() {
		t.Fatal("publishing replica does not see its signal")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if b.Current().Facts(userQuery("dave")).RevokedBefore.IsZero() {
		t.Fatal("second replica does not see the signal")
	}

	t.Run("a wrong token is refused", func(t *testing.T) {
		bad := cfg
		bad.NATS.Token = "wrong"
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if s, err := Open(ctx, bad, testLogger(t)); err == nil {
			s.Close()
			t.Fatal("connected with a wrong token")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"embedded needs data_dir", Config{}, "data_dir"},
		{"replicas need a cluster", Config{DataDir: "x", Replicas: 3}, "replicas"},
		{"nats_url must be a URL", Config{NATSURL: "http://x:4222"}, "nats_url"},
		{"one credential only", Config{NATSURL: "nats://x:4222", NATS: NATSConfig{Token: "t", CredsFile: "c"}}, "nats:"},
		{"cert needs key", Config{NATSURL: "nats://x:4222", NATS: NATSConfig{TLS: TLSConfig{CertFile: "c"}}}, "key_file"},
		{"retention must cover tokens", Config{DataDir: "x", Retention: time.Second}, "retention"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.SetDefaults()
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			}
		})
	}
	ok := Config{DataDir: "x"}
	ok.SetDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}
