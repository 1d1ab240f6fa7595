package authzen

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vigil-authz/vigil/internal/engine"
)

func TestReplicaFreshness(t *testing.T) {
	snap := todoSnapshot(t)
	var stale error
	var awaitErr error
	view := func() engine.View {
		return engine.View{Policies: snap, PolicySeq: 4, Stale: stale}
	}
	h := newTodoHandler(t, Options{
		Views: view,
		Await: func(context.Context, engine.Consistency) error { return awaitErr },
	})
	body := `{"subject":{"type":"user","id":"CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},"action":{"name":"can_read_user"},"resource":{"type":"user","id":"rick@the-citadel.com"}}`
	tests := []struct {
		name     string
		header   []string
		stale    error
		awaitErr error
		want     int
	}{
		{"a fresh PDP decides", nil, nil, nil, 200},
		{"a stale PDP answers 503", nil, fmt.Errorf("%w: cut off", engine.ErrStale), nil, 503},
		{"a reached policy sequence is decided", []string{engine.HeaderMinPolicySeq, "4"}, nil, nil, 200},
		{"a policy sequence the PDP has not reached answers 503", []string{engine.HeaderMinPolicySeq, "5"}, nil, nil, 503},
		{"a wait that times out answers 503", []string{engine.HeaderMinSeq, "9"}, nil, fmt.Errorf("%w: timed out", engine.ErrBehind), 503},
		{"a malformed minimum sequence is a bad request", []string{engine.HeaderMinSeq, "x"}, nil, nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stale, awaitErr = tt.stale, tt.awaitErr
			rec := post(h, PathEvaluation, body, tt.header...)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.want == 503 && (rec.Header().Get("Retry-After") == "" || rec.Header().Get("Content-Type") != "application/problem+json") {
				t.Fatalf("503 needs Retry-After and problem+json: %v", rec.Header())
			}
		})
	}
	t.Run("an explanation carries the sequences the decision was made at", func(t *testing.T) {
		stale, awaitErr = nil, nil
		rec := post(h, PathEvaluation, body, HeaderExplain, "true")
		var out struct {
			Context struct {
				Vigil struct {
					PolicySeq *uint64 `json:"policy_seq"`
					StateSeq  *uint64 `json:"state_seq"`
				} `json:"vigil"`
			} `json:"context"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Context.Vigil.PolicySeq == nil || *out.Context.Vigil.PolicySeq != 4 || out.Context.Vigil.StateSeq == nil {
			t.Fatalf("%v %s", err, rec.Body)
		}
		if strings.Contains(rec.Body.String(), `"policy_seq":0`) {
			t.Fatal(rec.Body.String())
		}
	})
}
