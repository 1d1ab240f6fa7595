package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher reloads a policy directory into a Store whenever files in it
// change. Events are debounced so that an editor's save or a `git pull`
// touching many files causes one reload. A change that fails to compile is
// recorded as rejected and the running version keeps serving. If the
// directory disappears, the running version keeps serving and the watcher
// picks the directory up again when it reappears.
type Watcher struct {
	Dir      string
	Store    *Store
	Log      *slog.Logger
	Debounce time.Duration // default 200ms
	// Poll is a fallback rescan interval for file systems where inotify
	// misses events (network mounts, some container volumes); 0 disables.
	Poll time.Duration
	// OnReload, when set, is called after each reload attempt.
	OnReload func(v *Version, changed bool, err error)
}

// Reload loads the directory once and applies it.
func (w *Watcher) Reload() (*Version, bool, error) {
	source := "dir:" + w.Dir
	b, err := LoadDir(w.Dir)
	if err != nil {
		w.Store.Reject(source, err)
		w.report(nil, false, err)
		return nil, false, err
	}
	v, changed, err := w.Store.Apply(b, source)
	w.report(v, changed, err)
	return v, changed, err
}

func (w *Watcher) report(v *Version, changed bool, err error) {
	log := w.logger()
	switch {
	case err != nil:
		log.Error("policy reload rejected; the active version keeps serving", "dir", w.Dir, "err", err)
	case changed:
		log.Info("policy directory compiled", "dir", w.Dir, "version", v.ID, "policies", v.Policies, "entities", v.Entities)
	}
	if w.OnReload != nil {
		w.OnReload(v, changed, err)
	}
}

func (w *Watcher) logger() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Run watches until ctx is cancelled. It does not perform an initial load;
// call Reload first.
func (w *Watcher) Run(ctx context.Context) error {
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = 200 * time.Millisecond
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy directory %q: %w", w.Dir, err)
	}
	defer fw.Close()

	dir := filepath.Clean(w.Dir)
	parent := filepath.Dir(dir)
	// Watching the parent notices the directory being removed, renamed or
	// re-created (as deploy tools that swap a symlink or a directory do).
	if err := fw.Add(parent); err != nil {
		w.logger().Warn("cannot watch the policy directory's parent; re-creation will not be noticed", "dir", parent, "err", err)
	}
	watched := map[string]bool{}
	addTree := func() {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if !watched[p] {
				if err := fw.Add(p); err == nil {
					watched[p] = true
				}
			}
			return nil
		})
	}
	addTree()

	// The poll fallback compares the directory with the last content it
	// tried; start from what is active so that a push made after start-up
	// is not reverted by the first tick.
	lastTried := ""
	if b, err := LoadDir(w.Dir); err == nil {
		lastTried = b.Hash()
	}
	var timer *time.Timer
	var fire <-chan time.Time
	var poll <-chan time.Time
	if w.Poll > 0 {
		t := time.NewTicker(w.Poll)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("policy watcher closed")
			}
			name := filepath.Clean(ev.Name)
			if name != dir && !strings.HasPrefix(name, dir+string(filepath.Separator)) {
				continue // another entry of the parent directory
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				delete(watched, name)
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("policy watcher closed")
			}
			w.logger().Warn("policy watcher error", "dir", w.Dir, "err", err)
		case <-fire:
			fire = nil
			addTree()
			w.Reload()
		case <-poll:
			addTree()
			if b, err := LoadDir(w.Dir); err == nil {
				if h := b.Hash(); h != lastTried {
					lastTried = h
					if cur := w.Store.Active(); cur == nil || cur.ID != h {
						w.Reload()
					}
				}
			}
		}
	}
}
