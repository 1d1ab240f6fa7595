package engine

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/vigil-authz/vigil/internal/policy"
)

func TestConsistencyFrom(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string][]string
		want    Consistency
		bad     bool
	}{
		{"no headers ask for nothing", nil, Consistency{}, false},
		{"a state sequence is read", map[string][]string{HeaderMinSeq: {"42"}}, Consistency{StateSeq: 42}, false},
		{"a policy sequence is read", map[string][]string{HeaderMinPolicySeq: {"7"}}, Consistency{PolicySeq: 7}, false},
		{"both are read", map[string][]string{HeaderMinSeq: {"1"}, HeaderMinPolicySeq: {"2"}}, Consistency{1, 2}, false},
		{"the largest sequence is accepted", map[string][]string{HeaderMinSeq: {"18446744073709551615"}}, Consistency{StateSeq: 1<<64 - 1}, false},
		{"a sequence beyond 64 bits is refused", map[string][]string{HeaderMinSeq: {"18446744073709551616"}}, Consistency{}, true},
		{"a negative sequence is refused", map[string][]string{HeaderMinSeq: {"-1"}}, Consistency{}, true},
		{"a signed sequence is refused", map[string][]string{HeaderMinSeq: {"+1"}}, Consistency{}, true},
		{"an empty value is refused", map[string][]string{HeaderMinSeq: {""}}, Consistency{}, true},
		{"text is refused", map[string][]string{HeaderMinPolicySeq: {"latest"}}, Consistency{}, true},
		{"a repeated header is refused", map[string][]string{HeaderMinSeq: {"1", "2"}}, Consistency{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConsistencyFrom(http.Header(tt.headers))
			if tt.bad {
				if !errors.Is(err, ErrBadConsistency) {
					t.Fatalf("want ErrBadConsistency, got %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzConsistencyFrom(f *testing.F) {
	for _, s := range []string{"0", "42", "18446744073709551615", "-1", "", "1e3", " 1", "0x10"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		h := http.Header{HeaderMinSeq: {a}, HeaderMinPolicySeq: {b}}
		c, err := ConsistencyFrom(h)
		if err != nil {
			if !errors.Is(err, ErrBadConsistency) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		_ = c.IsZero()
	})
}

// fakeFreshness is a Freshness with fixed answers.
type fakeFreshness struct {
	stale     error
	policySeq uint64
	awaited   *Consistency
}

func (f *fakeFreshness) Stale() error      { return f.stale }
func (f *fakeFreshness) PolicySeq() uint64 { return f.policySeq }
func (f *fakeFreshness) Await(_ context.Context, c Consistency) error {
	f.awaited = &c
	return nil
}

func TestViewFreshness(t *testing.T) {
	store := policy.NewStore(policy.StoreOptions{})
	t.Run("without Freshness a view is never stale and has no policy sequence", func(t *testing.T) {
		e := New(store, nil)
		v := e.View()
		if v.Stale != nil || v.PolicySeq != 0 {
			t.Fatalf("%+v", v)
		}
		if err := e.Await(context.Background(), Consistency{StateSeq: 5}); err != nil {
			t.Fatal(err)
		}
		if v.Reflects(Consistency{StateSeq: 5}) {
			t.Fatal("a view without state cannot reflect state seq 5")
		}
		if !v.Reflects(Consistency{}) {
			t.Fatal("every view reflects the zero consistency")
		}
	})
	t.Run("with Freshness a view carries staleness and the policy sequence", func(t *testing.T) {
		ff := &fakeFreshness{stale: ErrStale, policySeq: 9}
		e := New(store, nil)
		e.Freshness = ff
		v := e.View()
		if !errors.Is(v.Stale, ErrStale) || v.PolicySeq != 9 {
			t.Fatalf("%+v", v)
		}
		if !v.Reflects(Consistency{PolicySeq: 9}) || v.Reflects(Consistency{PolicySeq: 10}) {
			t.Fatal("Reflects compares the policy sequence")
		}
		if err := e.Await(context.Background(), Consistency{}); err != nil || ff.awaited != nil {
			t.Fatal("the zero consistency must not wait")
		}
		if err := e.Await(context.Background(), Consistency{PolicySeq: 3}); err != nil || ff.awaited == nil || ff.awaited.PolicySeq != 3 {
			t.Fatalf("Await must delegate: %v %+v", err, ff.awaited)
		}
	})
}
