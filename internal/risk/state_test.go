package risk

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/state"
)

// openState opens a journal with an embedded NATS server in dir.
func openState(t *testing.T, dir string) *state.Store {
	t.Helper()
	cfg := state.Config{DataDir: dir}
	cfg.SetDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := state.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WaitReady(ctx); err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st
}

// TestLevelsReachLiveStateAndSurviveRestarts writes changes through a real
// journal: the facts every decision reads show them, and an engine
// restarted on the same journal resumes the level and lowers it in time.
func TestLevelsReachLiveStateAndSurviveRestarts(t *testing.T) {
	dir := t.TempDir()
	st := openState(t, dir)
	clk := &testClock{t: t0}
	noHijack := Config{}
	noHijack.Detectors.SessionHijack.Enabled = new(bool)
	e, err := New(Options{Config: noHijack, Publisher: st, State: st, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	e.feed(ev(0, berlin), ev(2*time.Minute, newYork))
	facts := func(st *state.Store) (user, session state.RiskFact) {
		return st.Current().Facts(state.Query{Issuer: testIssuer, Subject: "alice"}).Risk,
			st.Current().Facts(state.Query{SessionID: "s-1"}).Risk
	}
	u, s := facts(st)
	if u.Level != "HIGH" || u.Score != 80 || len(u.Reasons) != 1 || !strings.HasPrefix(u.Reasons[0], "impossible_travel: ") {
		t.Fatalf("user risk in live state = %+v", u)
	}
	if s.Level != "HIGH" {
		t.Fatalf("session risk in live state = %+v", s)
	}
	if other := st.Current().Facts(state.Query{Issuer: testIssuer, Subject: "bob"}).Risk; other.Level != "" {
		t.Fatalf("bob has risk %+v", other)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: a new engine knows nothing until alice shows up again.
	st = openState(t, dir)
	defer st.Close()
	if u, _ := facts(st); u.Level != "HIGH" {
		t.Fatalf("after restart, live state = %+v", u)
	}
	clk.set(t0.Add(10 * time.Minute))
	e, err = New(Options{Config: noHijack, Publisher: st, State: st, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	e.feed(ev(10*time.Minute, newYork))
	rep := e.Inspect(ReportQuery{Subject: "alice"})
	if len(rep.Subjects) != 1 || rep.Subjects[0].Level != "HIGH" || rep.Subjects[0].Published.Level != "HIGH" ||
		len(rep.Subjects[0].Contributions) != 1 || rep.Subjects[0].Contributions[0].Detector != "carried_over" {
		t.Fatalf("resumed report = %+v", rep.Subjects)
	}
	// carry_over (1h) fades like any contribution: LOW an hour after the
	// recorded change.
	e.tickAt(t0.Add(2*time.Minute + time.Hour))
	if u, s := facts(st); u.Level != "LOW" || s.Level != "LOW" {
		t.Fatalf("an hour later, live state = user %+v, session %+v", u, s)
	}
}

// TestResumeIgnoresOtherSources: a level set by an administrator or a
// transmitter is not the engine's to lower.
func TestResumeIgnoresOtherSources(t *testing.T) {
	st := openState(t, t.TempDir())
	defer st.Close()
	score := 90
	ctx := context.Background()
	if _, err := st.Publish(ctx, state.Signal{
		ID: "admin:1", Source: "admin", Kind: state.KindRiskLevelChange, EventTime: t0,
		Subject: state.Subject{Format: state.FormatIssSub, Iss: testIssuer, Sub: "alice"},
		Risk:    &state.RiskChange{Level: "HIGH", Score: &score, Reasons: []string{"analyst: account sold on a forum"}},
	}); err != nil {
		t.Fatal(err)
	}
	clk := &testClock{t: t0.Add(time.Minute)}
	e, err := New(Options{Publisher: st, State: st, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	e.feed(ev(time.Minute))
	e.tickAt(t0.Add(3 * time.Hour))
	if u := st.Current().Facts(state.Query{Issuer: testIssuer, Subject: "alice"}).Risk; u.Level != "HIGH" || u.Score != 90 {
		t.Fatalf("live state = %+v, want the administrator's HIGH", u)
	}
}
