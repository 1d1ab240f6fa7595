package authzen

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid; otherwise a substring of the error
	}{
		{"defaults are valid", Config{}, ""},
		{"an https issuer is valid", Config{Issuer: "https://pdp.example.com/tenant1/"}, ""},
		{"an issuer without scheme is named", Config{Issuer: "pdp.example.com"}, "issuer:"},
		{"an issuer with a query is named", Config{Issuer: "https://pdp.example.com/?a=1"}, "issuer: \"https://pdp.example.com/?a=1\" must not have a query or fragment"},
		{"an issuer with a fragment is named", Config{Issuer: "https://pdp.example.com/#x"}, "must not have a query or fragment"},
		{"a tiny body limit is named", Config{Limits: Limits{MaxBodyBytes: 10}}, "limits.max_body_bytes: 10 is out of range"},
		{"a negative depth is named", Config{Limits: Limits{MaxDepth: -1}}, "limits.max_depth"},
		{"a default page above the maximum is named", Config{Limits: Limits{MaxPageSize: 10, DefaultPageSize: 20}}, "limits.default_page_size: 20 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.SetDefaults()
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("defaults are the documented values", func(t *testing.T) {
		var l Limits
		l.SetDefaults()
		if l != (Limits{MaxBodyBytes: 1 << 20, MaxDepth: 32, MaxEvaluations: 1000, DefaultPageSize: 100, MaxPageSize: 1000, MaxSearchScan: 10000}) {
			t.Fatalf("%+v", l)
		}
	})
	t.Run("a small maximum page size lowers the default page size", func(t *testing.T) {
		l := Limits{MaxPageSize: 10}
		l.SetDefaults()
		if l.DefaultPageSize != 10 {
			t.Fatalf("%+v", l)
		}
	})
}

// TestConcurrentUse runs evaluations and searches in parallel while the
// policy set changes underneath; run with -race.
func TestConcurrentUse(t *testing.T) {
	v1 := todoSnapshot(t)
	v2 := compileDir(t, filepath.Join(repoRoot(t), "internal", "authzen", "testdata", "todo-v2"))
	views := viewsOf(v1)
	h := New(Options{Views: views.View})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				switch (g + i) % 3 {
				case 0:
					if rec := post(h, PathEvaluation, rickUpdates("morty@the-citadel.com")); rec.Code != 200 {
						t.Errorf("evaluation: %d", rec.Code)
					}
				case 1:
					if rec := post(h, PathSearchResource, `{"subject":{"type":"user","id":"x"},"action":{"name":"can_read_user"},"resource":{"type":"user"}}`); rec.Code != 200 {
						t.Errorf("search: %d", rec.Code)
					}
				default:
					if i%2 == 0 {
						views.p.Store(v2)
					} else {
						views.p.Store(v1)
					}
				}
			}
		})
	}
	wg.Wait()
}
