package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
)

// Two versions that each allow exactly one of alice and bob. A decision
// made from half of one and half of the other would allow both or neither.
const (
	versionAlice = `@id("alice-only") permit(principal == User::"alice", action, resource);`
	versionBob   = `@id("bob-only") permit(principal == User::"bob", action, resource);`
)

// TestReloadsUnderLoad performs 100 policy changes (directory writes, admin
// pushes, rejected broken pushes and rollbacks) while clients keep asking
// for decisions. No request may fail and every batch must come from one
// whole version.
func TestReloadsUnderLoad(t *testing.T) {
	dir := policyDir(t, map[string]string{"main.cedar": versionAlice})
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Policies.Dir = dir
	cfg.Policies.Debounce = 5 * time.Millisecond
	cfg.Server.Addr, cfg.Server.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var mainURL, adminURL string
	for i := 0; ; i++ {
		if m, a := s.Addrs(); m != nil {
			mainURL, adminURL = "http://"+m.String(), "http://"+a.String()
			break
		}
		if i > 500 {
			t.Fatal("server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	body := []byte(`{"action":{"name":"read"},"resource":{"type":"Doc","id":"1"},"evaluations":[{"subject":{"type":"User","id":"alice"}},{"subject":{"type":"User","id":"bob"}}]}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	var stop atomic.Bool
	var requests, failures atomic.Int64
	var firstFailure atomic.Value
	fail := func(msg string) {
		failures.Add(1)
		firstFailure.CompareAndSwap(nil, msg)
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req, _ := http.NewRequest("POST", mainURL+"/access/v1/evaluations", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					fail(err.Error())
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				requests.Add(1)
				if resp.StatusCode != 200 {
					fail(fmt.Sprintf("status %d: %s", resp.StatusCode, data))
					continue
				}
				var out struct {
					Evaluations []struct {
						Decision bool `json:"decision"`
					} `json:"evaluations"`
				}
				if err := json.Unmarshal(data, &out); err != nil || len(out.Evaluations) != 2 {
					fail("bad body: " + string(data))
					continue
				}
				if out.Evaluations[0].Decision == out.Evaluations[1].Decision {
					fail("decisions from a mixed or partial policy set: " + string(data))
				}
			}
		}()
	}

	admin := func(path, payload string) int {
		req, _ := http.NewRequest("POST", adminURL+path, bytes.NewReader([]byte(payload)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.AdminToken)
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	push := func(src string) int {
		b, _ := json.Marshal(map[string]any{"files": map[string]string{"main.cedar": src}})
		return admin("/admin/v1/policies", string(b))
	}
	waitActive := func(id func() bool) {
		deadline := time.Now().Add(5 * time.Second)
		for !id() && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}

	reloads := 0
	for i := 0; reloads < 100; i++ {
		src := versionAlice
		if i%2 == 1 {
			src = versionBob
		}
		src += fmt.Sprintf("\n// change %d", i)
		switch i % 4 {
		case 0, 1: // through the watched directory
			before := s.Store().Active().ID
			if err := os.WriteFile(filepath.Join(dir, "main.cedar"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			waitActive(func() bool { return s.Store().Active().ID != before })
		case 2: // through the admin API
			if code := push(src); code != 200 {
				t.Fatalf("push: %d", code)
			}
		case 3: // a broken push is rejected, then a rollback
			if code := push("permit(principal,"); code != 422 {
				t.Fatalf("broken push: %d", code)
			}
			hist := s.Store().History()
			if len(hist) > 1 {
				if code := admin("/admin/v1/policies/rollback", `{"version":"`+hist[1].ID+`"}`); code != 200 {
					t.Fatalf("rollback: %d", code)
				}
			}
		}
		reloads++
		time.Sleep(3 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", failures.Load(), requests.Load(), firstFailure.Load())
	}
	if requests.Load() < 100 {
		t.Fatalf("only %d requests ran during the reloads", requests.Load())
	}
	t.Logf("%d requests during %d reloads, none failed", requests.Load(), reloads)
}
