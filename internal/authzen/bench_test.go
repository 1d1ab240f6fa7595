package authzen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchBody is a typical Todo request: an editor updating their own todo,
// with resource properties (so the request-scoped entity path is taken).
var benchBody = []byte(`{"subject":{"type":"user","id":"` + pidMorty + `"},"action":{"name":"can_update_todo"},` +
	`"resource":{"type":"todo","id":"7240d0db-8ff0-41ec-98b2-34a096273b91","properties":{"ownerID":"morty@the-citadel.com"}}}`)

// nullHandler is the baseline: it decodes the same request with
// encoding/json into a plain struct and encodes a constant decision, with
// no policy evaluation. The AuthZEN handler's throughput is compared to it.
func nullHandler() http.Handler {
	type entity struct {
		Type       string         `json:"type"`
		ID         string         `json:"id"`
		Properties map[string]any `json:"properties"`
	}
	type request struct {
		Subject entity `json:"subject"`
		Action  struct {
			Name       string         `json:"name"`
			Properties map[string]any `json:"properties"`
		} `json:"action"`
		Resource entity         `json:"resource"`
		Context  map[string]any `json:"context"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, DefaultMaxBodyBytes)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Decision bool `json:"decision"`
		}{req.Subject.ID != ""})
	})
}

// benchHTTP drives h over real loopback HTTP with keep-alive connections
// from GOMAXPROCS client goroutines.
func benchHTTP(b *testing.B, h http.Handler, path string) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := srv.URL + path
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var resp bytes.Buffer
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchBody))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Reset()
			_, _ = io.Copy(&resp, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !strings.HasPrefix(resp.String(), `{"decision":true}`) {
				b.Errorf("%d %s", res.StatusCode, resp.String())
				return
			}
		}
	})
}

// BenchmarkHTTPAlternating measures both endpoints in alternating slices of
// a few hundred requests each, so that both see the same background load
// (a shared machine makes back-to-back benchmarks drift). It reports each
// side's throughput and their ratio (AuthZEN ÷ null; the goal is ≥ 0.85).
func BenchmarkHTTPAlternating(b *testing.B) {
	type side struct {
		url  string
		reqs int
		dur  time.Duration
	}
	evalSrv := httptest.NewServer(newTodoHandler(b, Options{}))
	defer evalSrv.Close()
	nullSrv := httptest.NewServer(nullHandler())
	defer nullSrv.Close()
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	sides := []*side{{url: evalSrv.URL + PathEvaluation}, {url: nullSrv.URL + PathEvaluation}}
	workers := runtime.GOMAXPROCS(0)
	const slice = 256
	b.ReportAllocs()
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		s := sides[round%2]
		n := min(slice, b.N-done)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					if err := postOnce(client, s.url); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		s.dur += time.Since(start)
		s.reqs += n
		done += n
	}
	b.StopTimer()
	rate := func(s *side) float64 {
		if s.dur == 0 {
			return 0
		}
		return float64(s.reqs) / s.dur.Seconds()
	}
	b.ReportMetric(rate(sides[0]), "authzen-req/s")
	b.ReportMetric(rate(sides[1]), "null-req/s")
	if r := rate(sides[1]); r > 0 {
		b.ReportMetric(rate(sides[0])/r, "ratio")
	}
}

func postOnce(client *http.Client, url string) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchBody))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte(`{"decision":true}`)) {
		return fmt.Errorf("%d %s", res.StatusCode, body)
	}
	return nil
}

func BenchmarkHTTPEvaluation(b *testing.B) {
	benchHTTP(b, newTodoHandler(b, Options{}), PathEvaluation)
}

func BenchmarkHTTPNull(b *testing.B) {
	benchHTTP(b, nullHandler(), PathEvaluation)
}

// benchInProcess measures the handler without the network, to see where
// the time goes.
func benchInProcess(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	rd := bytes.NewReader(benchBody)
	req := httptest.NewRequest(http.MethodPost, PathEvaluation, rd)
	req.Header.Set("Content-Type", "application/json")
	w := &discardWriter{h: http.Header{}}
	for b.Loop() {
		rd.Reset(benchBody)
		req.Body = io.NopCloser(rd)
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(p), nil
}
func (d *discardWriter) WriteHeader(s int) { d.status = s }

func BenchmarkInProcessEvaluation(b *testing.B) { benchInProcess(b, newTodoHandler(b, Options{})) }
func BenchmarkInProcessNull(b *testing.B)       { benchInProcess(b, nullHandler()) }

func BenchmarkInProcessBatch100(b *testing.B) {
	h := newTodoHandler(b, Options{})
	var sb strings.Builder
	sb.WriteString(`{"subject":{"type":"user","id":"` + pidMorty + `"},"action":{"name":"can_update_todo"},"evaluations":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"resource":{"type":"todo","id":"t","properties":{"ownerID":"morty@the-citadel.com"}}}`)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	b.ReportAllocs()
	w := &discardWriter{h: http.Header{}}
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, PathEvaluations, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}
