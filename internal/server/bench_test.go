package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/signal"
	"github.com/vigil-authz/vigil/internal/signal/ssftest"
)

// BenchmarkSignalToDeny measures, for 1,000 signals, the time from the
// start of an SSF push (a signed CAEP session-revoked SET POSTed to
// /ssf/push) to the first gateway request of that user that is denied,
// while background clients keep the gateway busy with allowed requests.
//
//	go test -run '^$' -bench SignalToDeny -benchtime 1x ./internal/server/
func BenchmarkSignalToDeny(b *testing.B) {
	const audience = "https://vigil.bench"
	tx := ssftest.New(b, audience)
	gs := startGatewayServerB(b, tx, audience)
	const n = 1000
	tokens := make([]string, n)
	for i := range tokens {
		tok, err := gs.issuer.Mint(map[string]any{"sub": fmt.Sprintf("u%d", i), "aud": "api", "iat": time.Now().Add(-time.Minute).Unix(), "jti": fmt.Sprintf("j%d", i), "client_id": "c"}, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = tok
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(tok string) int {
		req, _ := http.NewRequest("GET", gs.gwURL+"/docs/1", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	bg, err := gs.issuer.Mint(map[string]any{"sub": "background", "aud": "api", "jti": "bg", "client_id": "c"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	// Warm the token cache so that the measured part is the signal path.
	for _, tok := range tokens {
		if get(tok) != 200 {
			b.Fatal("not allowed before the signal")
		}
	}
	var stop atomic.Bool
	var bgRequests atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				get(bg)
				bgRequests.Add(1)
			}
		}()
	}
	lat := make([]time.Duration, 0, n)
	for b.Loop() {
		for i := 0; i < n; i++ {
			set := tx.Sign(ssftest.Event{Type: ssftest.SessionRevoked,
				SubID: map[string]any{"format": "iss_sub", "iss": gs.issuer.Issuer(), "sub": fmt.Sprintf("u%d", i)}})
			start := time.Now()
			code, body, err := tx.Push(context.Background(), gs.mainURL+PathSSFPush, "", set)
			if err != nil || code != http.StatusAccepted {
				b.Fatalf("push: %d %s %v", code, body, err)
			}
			for get(tokens[i]) == 200 {
				if time.Since(start) > 5*time.Second {
					b.Fatal("never denied")
				}
			}
			lat = append(lat, time.Since(start))
		}
	}
	stop.Store(true)
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(bgRequests.Load()), "background-requests")
}

func startGatewayServerB(b *testing.B, tx *ssftest.Transmitter, audience string) *gatewayServer {
	gs := startGatewayServer(b, map[string]string{"main.cedar": `@id("all") permit(principal, action, resource);`}, func(c *config.Config) {
		c.Signals.Transmitters = []signal.TransmitterConfig{{Name: "idp", Issuer: tx.Issuer, ConfigurationURL: tx.ConfigurationURL(), Audience: audience, Push: &signal.PushConfig{}}}
	})
	deadline := time.Now().Add(10 * time.Second)
	for { // wait for the receiver to load the transmitter's keys
		code, _, _ := tx.Push(context.Background(), gs.mainURL+PathSSFPush, "", tx.Sign(ssftest.Event{Type: "urn:example:warmup", SubID: map[string]any{"format": "opaque", "id": "x"}}))
		if code == http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return gs
}
