package signal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"
)

// pollRequest is the RFC 8936 request body.
type pollRequest struct {
	MaxEvents         int                `json:"maxEvents"`
	ReturnImmediately bool               `json:"returnImmediately"`
	Ack               []string           `json:"ack,omitempty"`
	SetErrs           map[string]pollErr `json:"setErrs,omitempty"`
}

type pollErr struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// pollResponse is the RFC 8936 response body.
type pollResponse struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// maxPollResponse bounds a poll response: max_events SETs of 64 KiB.
func maxPollResponse(maxEvents int) int64 { return int64(maxEvents)*(MaxSETSize+1024) + 4096 }

// poll runs the RFC 8936 client for t until ctx ends. A SET is acknowledged
// only after Publish returned for it (or it was ignored); invalid SETs are
// reported in setErrs; SETs that could not be journalled are neither, so
// the transmitter delivers them again.
func (r *Receiver) poll(ctx context.Context, t *transmitter) {
	cfg := t.cfg.Poll
	var acks []string
	errs := map[string]pollErr{}
	var bo backoff
	log := r.log.With("transmitter", t.cfg.Name)
	for ctx.Err() == nil {
		req := pollRequest{MaxEvents: cfg.MaxEvents, Ack: acks, SetErrs: errs}
		resp, err := r.pollOnce(ctx, t, req)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			d := bo.next()
			log.Warn("ssf poll failed; retrying", "err", err, "retry_in", d)
			sleep(ctx, d)
			continue
		}
		acks, errs = nil, map[string]pollErr{}
		jtis := make([]string, 0, len(resp.Sets))
		for jti := range resp.Sets {
			jtis = append(jtis, jti)
		}
		slices.Sort(jtis)
		failed := false
		for _, jti := range jtis {
			_, _, err := r.ingest(ctx, t, []byte(resp.Sets[jti]))
			var se *SETError
			switch {
			case errors.As(err, &se):
				errs[jti] = pollErr{Err: se.Code, Description: se.Description}
			case err != nil:
				failed = true // not acknowledged: redelivered later
			default:
				acks = append(acks, jti)
			}
			if failed {
				break
			}
		}
		if failed {
			d := bo.next()
			log.Warn("SETs could not be journalled; polling again later", "retry_in", d)
			sleep(ctx, d)
			continue
		}
		bo.reset()
		if len(resp.Sets) == 0 && !resp.MoreAvailable && len(acks) == 0 && len(errs) == 0 {
			sleep(ctx, cfg.Interval)
		}
	}
	if len(acks) > 0 || len(errs) > 0 {
		// Deliver the last acknowledgements before stopping.
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := r.pollOnce(actx, t, pollRequest{MaxEvents: 0, ReturnImmediately: true, Ack: acks, SetErrs: errs}); err != nil {
			log.Warn("final ssf poll acknowledgement failed; the transmitter will redeliver", "err", err)
		}
	}
}

func (r *Receiver) pollOnce(ctx context.Context, t *transmitter, body pollRequest) (*pollResponse, error) {
	cfg := t.cfg.Poll
	if body.SetErrs != nil && len(body.SetErrs) == 0 {
		body.SetErrs = nil
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode poll request: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, cfg.Endpoint, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("poll %s: %w", cfg.Endpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	// The long poll may outlast the shared client's timeout.
	client := *r.client
	client.Timeout = 0
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("poll %s: %w", cfg.Endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("poll %s: HTTP %d", cfg.Endpoint, resp.StatusCode)
	}
	var pr pollResponse
	lr := io.LimitReader(resp.Body, maxPollResponse(max(body.MaxEvents, 1)))
	if err := json.NewDecoder(lr).Decode(&pr); err != nil {
		return nil, fmt.Errorf("poll %s: decode response: %w", cfg.Endpoint, err)
	}
	return &pr, nil
}

// backoff is exponential backoff with equal jitter: the n-th wait is
// between half and all of min(500ms·2^n, 1m).
type backoff struct{ n int }

func (b *backoff) next() time.Duration {
	b.n = min(b.n+1, 8)
	ceil := min(500*time.Millisecond<<b.n, time.Minute)
	return ceil/2 + rand.N(ceil/2)
}

func (b *backoff) reset() { b.n = 0 }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
