package policy

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Version is one activated policy set.
type Version struct {
	// ID is the bundle's content hash.
	ID string `json:"id"`
	// ActivatedAt is when this version became active (the latest time, if
	// it was activated more than once through rollbacks).
	ActivatedAt time.Time `json:"activated_at"`
	// Source says where it came from: "dir:<path>", "push", "rollback".
	Source   string `json:"source"`
	Policies int    `json:"policies"`
	Entities int    `json:"entities"`
	// Snapshot is the compiled set.
	Snapshot *Snapshot `json:"-"`
}

// Rejected records an attempt to activate a broken policy set.
type Rejected struct {
	At       time.Time `json:"at"`
	Source   string    `json:"source"`
	ID       string    `json:"id,omitempty"`
	Error    string    `json:"error"`
	Problems []Problem `json:"problems,omitempty"`
}

// ErrUnknownVersion is returned by Rollback for an ID not in the history.
var ErrUnknownVersion = errors.New("unknown policy version")

// Store holds the active policy version and its history. Readers call
// Current, which is one atomic load; writers compile off to the side and
// swap the whole snapshot in with one atomic store, so no request ever sees
// half a policy set and a broken set never replaces a working one.
type Store struct {
	active atomic.Pointer[Version]

	mu       sync.Mutex // serialises writers and guards the fields below
	history  []*Version // oldest first, bounded
	rejected *Rejected
	subs     []func(*Version)
	limit    int
	now      func() time.Time
}

// StoreOptions configure a Store.
type StoreOptions struct {
	// History is how many versions are kept for rollback (default 20).
	History int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// NewStore returns an empty store; it is not ready until a version is
// activated.
func NewStore(o StoreOptions) *Store {
	if o.History <= 0 {
		o.History = 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{limit: o.History, now: o.Now}
}

// Current returns the active snapshot, or nil before the first activation.
func (s *Store) Current() *Snapshot {
	if v := s.active.Load(); v != nil {
		return v.Snapshot
	}
	return nil
}

// Active returns the active version, or nil.
func (s *Store) Active() *Version { return s.active.Load() }

// History returns the kept versions, newest first.
func (s *Store) History() []*Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Version, len(s.history))
	for i, v := range s.history {
		out[len(s.history)-1-i] = v
	}
	return out
}

// LastRejected returns the most recent rejected attempt, or nil.
func (s *Store) LastRejected() *Rejected {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// Subscribe registers fn to be called (synchronously, under the writer
// lock, after the swap) whenever a new version becomes active.
func (s *Store) Subscribe(fn func(*Version)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, fn)
}

// Apply compiles b and, if it is valid, makes it the active version. A
// bundle identical to the active one changes nothing and returns the active
// version with changed=false. On error the active version keeps serving and
// the attempt is recorded as the last rejected one.
func (s *Store) Apply(b Bundle, source string) (v *Version, changed bool, err error) {
	id := b.Hash()
	if cur := s.active.Load(); cur != nil && cur.ID == id {
		return cur, false, nil
	}
	snap, err := Compile(b) // off to the side: readers keep the old snapshot
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		rej := &Rejected{At: s.now(), Source: source, ID: id, Error: err.Error()}
		var ce *CompileError
		if errors.As(err, &ce) {
			rej.Problems = ce.Problems
		}
		s.rejected = rej
		return nil, false, err
	}
	v = &Version{
		ID: snap.ID, ActivatedAt: s.now(), Source: source, Snapshot: snap,
		Policies: snap.Index.Len(), Entities: len(snap.Entities),
	}
	s.activateLocked(v)
	return v, true, nil
}

// Reject records a failed attempt that never reached Compile (for example
// an unreadable policy directory).
func (s *Store) Reject(source string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = &Rejected{At: s.now(), Source: source, Error: err.Error()}
}

// Rollback re-activates a version from the history.
func (s *Store) Rollback(id string) (*Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, old := range s.history {
		if old.ID == id {
			v := &Version{
				ID: old.ID, ActivatedAt: s.now(), Source: "rollback", Snapshot: old.Snapshot,
				Policies: old.Policies, Entities: old.Entities,
			}
			s.activateLocked(v)
			return v, nil
		}
	}
	return nil, fmt.Errorf("rollback to %q: %w", id, ErrUnknownVersion)
}

func (s *Store) activateLocked(v *Version) {
	s.active.Store(v)
	// Keep one history entry per ID, newest activation last.
	kept := s.history[:0]
	for _, h := range s.history {
		if h.ID != v.ID {
			kept = append(kept, h)
		}
	}
	s.history = append(kept, v)
	if len(s.history) > s.limit {
		s.history = append([]*Version(nil), s.history[len(s.history)-s.limit:]...)
	}
	for _, fn := range s.subs {
		fn(v)
	}
}
