package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Record is a journalled signal with its sequence.
type Record struct {
	Seq    uint64 `json:"seq"`
	Signal Signal `json:"signal"`
}

// MaxRecent bounds Recent.
const MaxRecent = 1000

// Recent returns up to n of the newest signals still in the journal,
// newest first. Records removed by expiry or superseded by later stateful
// signals are not returned.
func (s *Store) Recent(ctx context.Context, n int) ([]Record, error) {
	if n <= 0 {
		return nil, nil
	}
	n = min(n, MaxRecent)
	info, err := s.strm.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: read stream info: %w", ErrUnavailable, err)
	}
	out := make([]Record, 0, min(n, int(info.State.Msgs)))
	// Walk back from the last sequence; deleted messages leave gaps, so the
	// walk is bounded by the number of sequences still in the stream range.
	budget := 20 * n
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < n && budget > 0; seq-- {
		budget--
		m, err := s.strm.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("%w: read journal seq %d: %w", ErrUnavailable, seq, err)
		}
		var sig Signal
		if err := json.Unmarshal(m.Data, &sig); err != nil {
			continue
		}
		out = append(out, Record{Seq: seq, Signal: sig})
		if seq == info.State.FirstSeq {
			break
		}
	}
	return out, nil
}
