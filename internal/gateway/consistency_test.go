package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vigil-authz/vigil/internal/engine"
)

// replication simulates a replica's freshness for the gateway tests.
type replication struct {
	stale     atomic.Pointer[error]
	policySeq atomic.Uint64
	awaitErr  atomic.Pointer[error]
	awaited   atomic.Int64
}

func (r *replication) option() harnessOption {
	return func(_ *Config, o *Options) {
		inner := o.Views
		o.Views = func() engine.View {
			v := inner()
			v.PolicySeq = r.policySeq.Load()
			if e := r.stale.Load(); e != nil {
				v.Stale = *e
			}
			return v
		}
		o.Await = func(context.Context, engine.Consistency) error {
			r.awaited.Add(1)
			if e := r.awaitErr.Load(); e != nil {
				return *e
			}
			return nil
		}
	}
}

func TestReplicaFreshness(t *testing.T) {
	rep := &replication{}
	h := newHarness(t, rep.option())
	alice := bearerHeader(h.token("alice", []string{"member"}, nil))
	with := func(k, v string) http.Header {
		hd := alice.Clone()
		hd.Set(k, v)
		return hd
	}
	seq := func(n uint64) string { return fmt.Sprint(n) }
	staleErr := fmt.Errorf("%w: cut off", engine.ErrStale)
	behindErr := fmt.Errorf("%w: timed out", engine.ErrBehind)

	tests := []struct {
		name     string
		header   http.Header
		stale    error
		awaitErr error
		want     int
	}{
		{"a fresh replica decides", alice, nil, nil, 200},
		{"a stale replica fails closed", alice, staleErr, nil, 503},
		{"a request below the replica's policy sequence is decided", with(engine.HeaderMinPolicySeq, seq(5)), nil, nil, 200},
		{"a request beyond the replica's policy sequence waits and is refused", with(engine.HeaderMinPolicySeq, seq(6)), nil, nil, 503},
		{"a request whose wait times out is refused", with(engine.HeaderMinSeq, seq(1)), nil, behindErr, 503},
		{"a malformed minimum sequence is a bad request", with(engine.HeaderMinSeq, "latest"), nil, nil, 400},
	}
	rep.policySeq.Store(5)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep.stale.Store(nil)
			rep.awaitErr.Store(nil)
			if tt.stale != nil {
				rep.stale.Store(&tt.stale)
			}
			if tt.awaitErr != nil {
				rep.awaitErr.Store(&tt.awaitErr)
			}
			resp, body := h.request(false, "GET", "/todos/1", tt.header)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if tt.want == 503 {
				if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" || resp.Header.Get("Retry-After") == "" {
					t.Fatalf("503 must be problem+json with Retry-After: %q %q", ct, resp.Header.Get("Retry-After"))
				}
				if strings.Contains(string(body), "cut off") || strings.Contains(string(body), "timed out") {
					t.Fatalf("internal reasons must not reach the client: %s", body)
				}
			}
		})
	}
	t.Run("requests without a minimum sequence never wait", func(t *testing.T) {
		before := rep.awaited.Load()
		h.request(false, "GET", "/todos/1", alice)
		if rep.awaited.Load() != before {
			t.Fatal("Await called without a minimum-sequence header")
		}
	})
	t.Run("the decision log records the sequences", func(t *testing.T) {
		rep.stale.Store(nil)
		h.request(false, "GET", "/todos/1", bearerHeader(h.token("nobody", nil, nil)))
		if !strings.Contains(h.logs.String(), `"policy_seq":5`) || !strings.Contains(h.logs.String(), `"state_seq":0`) {
			t.Fatal("decision log lacks policy_seq/state_seq")
		}
	})
}
