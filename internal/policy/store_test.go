package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func bundleOf(files map[string]string) Bundle {
	var b Bundle
	for n, d := range files {
		b.Files = append(b.Files, File{Name: n, Data: []byte(d)})
	}
	return b
}

const permitAll = `@id("all") permit(principal, action, resource);`
const forbidAll = `@id("none") forbid(principal, action, resource);`

func TestStore(t *testing.T) {
	t.Run("a valid bundle becomes active and enters the history", func(t *testing.T) {
		s := NewStore(StoreOptions{})
		if s.Current() != nil {
			t.Fatal("a new store must have no active version")
		}
		v, changed, err := s.Apply(bundleOf(map[string]string{"a.cedar": permitAll}), "push")
		if err != nil || !changed {
			t.Fatalf("Apply: %v changed=%v", err, changed)
		}
		if s.Active() != v || s.Current() != v.Snapshot || len(s.History()) != 1 {
			t.Fatal("the applied version is not active")
		}
	})
	t.Run("identical content is not a new version", func(t *testing.T) {
		s := NewStore(StoreOptions{})
		v1, _, _ := s.Apply(bundleOf(map[string]string{"a.cedar": permitAll}), "push")
		v2, changed, err := s.Apply(bundleOf(map[string]string{"a.cedar": permitAll}), "push")
		if err != nil || changed || v1 != v2 {
			t.Fatalf("expected unchanged, got changed=%v err=%v", changed, err)
		}
	})
	t.Run("a broken bundle is rejected and the active version keeps serving", func(t *testing.T) {
		s := NewStore(StoreOptions{})
		good, _, _ := s.Apply(bundleOf(map[string]string{"a.cedar": permitAll}), "push")
		_, _, err := s.Apply(bundleOf(map[string]string{"a.cedar": "permit(principal,"}), "push")
		var ce *CompileError
		if !errors.As(err, &ce) {
			t.Fatalf("want CompileError, got %v", err)
		}
		if s.Active() != good {
			t.Fatal("a rejected bundle replaced the active version")
		}
		rej := s.LastRejected()
		if rej == nil || rej.Source != "push" || len(rej.Problems) == 0 || rej.Problems[0].File != "a.cedar" {
			t.Fatalf("last rejected not recorded: %+v", rej)
		}
	})
	t.Run("rollback re-activates an earlier version", func(t *testing.T) {
		s := NewStore(StoreOptions{})
		v1, _, _ := s.Apply(bundleOf(map[string]string{"a.cedar": permitAll}), "push")
		s.Apply(bundleOf(map[string]string{"a.cedar": forbidAll}), "push")
		v, err := s.Rollback(v1.ID)
		if err != nil || s.Current() != v1.Snapshot || v.Source != "rollback" {
			t.Fatalf("rollback: %v", err)
		}
		if _, err := s.Rollback("nope"); !errors.Is(err, ErrUnknownVersion) {
			t.Fatalf("unknown version: %v", err)
		}
	})
	t.Run("history is bounded and keeps one entry per version", func(t *testing.T) {
		s := NewStore(StoreOptions{History: 3})
		for i := 0; i < 5; i++ {
			s.Apply(bundleOf(map[string]string{"a.cedar": permitAll + "\n//" + string(rune('a'+i))}), "push")
		}
		if n := len(s.History()); n != 3 {
			t.Fatalf("history has %d entries, want 3", n)
		}
	})
	t.Run("subscribers see every activation", func(t *testing.T) {
		s := NewStore(StoreOptions{})
		var n atomic.Int32
		s.Subscribe(func(*Version) { n.Add(1) })
		s.Apply(bundleOf(map[string]string{"a.cedar": permitAll}), "push")
		s.Apply(bundleOf(map[string]string{"a.cedar": forbidAll}), "push")
		if n.Load() != 2 {
			t.Fatalf("got %d notifications", n.Load())
		}
	})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatcher(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "policies")
	writeFile(t, filepath.Join(dir, "main.cedar"), permitAll)
	s := NewStore(StoreOptions{})
	var mu sync.Mutex
	var errs []error
	w := &Watcher{Dir: dir, Store: s, Debounce: 20 * time.Millisecond, OnReload: func(_ *Version, _ bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}}
	if _, _, err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	first := s.Active().ID
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // let the watcher register

	t.Run("a changed file activates a new version", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "main.cedar"), forbidAll)
		waitFor(t, "reload", func() bool { return s.Active().ID != first })
	})
	t.Run("a broken file is rejected and the running version keeps serving", func(t *testing.T) {
		good := s.Active().ID
		writeFile(t, filepath.Join(dir, "main.cedar"), "forbid(principal")
		waitFor(t, "rejection", func() bool { r := s.LastRejected(); return r != nil && r.Source == "dir:"+dir })
		if s.Active().ID != good {
			t.Fatal("broken file replaced the active version")
		}
	})
	t.Run("a new file in a new subdirectory is picked up", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "main.cedar"), permitAll)
		waitFor(t, "fix", func() bool { return s.Active().ID == first })
		writeFile(t, filepath.Join(dir, "sub", "more.cedar"), `@id("more") forbid(principal, action, resource) when { false };`)
		waitFor(t, "subdir file", func() bool { return s.Active().Policies == 2 })
	})
	t.Run("a directory that disappears keeps the running version", func(t *testing.T) {
		good := s.Active().ID
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "rejection after removal", func() bool {
			r := s.LastRejected()
			return r != nil && strings.Contains(r.Error, "no such file")
		})
		if s.Active().ID != good {
			t.Fatal("a vanished directory changed the active version")
		}
		t.Run("and is picked up again when it comes back", func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "main.cedar"), forbidAll)
			waitFor(t, "re-created directory", func() bool { return s.Active().Policies == 1 && s.Active().ID != good })
		})
	})
}
