package risk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/vigil-authz/vigil/internal/state"
)

// published is what was last published about a key.
type published struct {
	level level
	score uint8
	at    stamp
}

// pubJob is a change waiting to be written, or a flush barrier.
type pubJob struct {
	change  Change
	target  target
	gen     uint8
	prev    published
	barrier chan struct{}
}

// pubFailure tells the engine a change was not written.
type pubFailure struct {
	target target
	gen    uint8
	prev   published
}

// publishLoop writes queued changes until ctx is cancelled, then writes
// what is still queued within publish.timeout.
func (e *Engine) publishLoop(ctx context.Context) {
	for {
		select {
		case j := <-e.jobs:
			e.write(ctx, j)
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.Publish.Timeout)
			defer cancel()
			for {
				select {
				case j := <-e.jobs:
					e.write(dctx, j)
				default:
					return
				}
			}
		}
	}
}

// write journals one change.
func (e *Engine) write(ctx context.Context, j pubJob) {
	if j.barrier != nil {
		close(j.barrier)
		return
	}
	sig := signalOf(j.change)
	pctx, cancel := context.WithTimeout(ctx, e.cfg.Publish.Timeout)
	seq, err := e.pub.Publish(pctx, sig)
	cancel()
	c := j.change
	if err != nil {
		e.m.publish("error")
		e.log.Warn("risk change not journalled; will retry", "principal", c.Principal, "subject", c.Subject,
			"session", c.SessionID, "level", c.Level, "score", c.Score, "err", err)
		select {
		case e.failures <- pubFailure{target: j.target, gen: j.gen, prev: j.prev}:
		default:
		}
		return
	}
	e.m.publish("ok")
	e.m.changes.WithLabelValues(c.Level).Inc()
	e.log.Info("risk level", "principal", c.Principal, "subject", c.Subject, "session", c.SessionID,
		"level", c.Level, "previous_level", c.PreviousLevel, "score", c.Score, "reasons", c.Reasons, "seq", seq)
	if e.notifier != nil && c.Level != c.PreviousLevel {
		e.notifier.Notify(c)
	}
}

// signalOf is the journal record of a change: a risk-level-change about
// the user (iss_sub) or the session (opaque session id, principal
// SESSION).
func signalOf(c Change) state.Signal {
	score := c.Score
	sig := state.Signal{
		ID:        c.ID,
		Source:    Source,
		EventType: EventType,
		Kind:      state.KindRiskLevelChange,
		EventTime: c.Time,
		Reason:    fmt.Sprintf("risk %s (score %d)", c.Level, c.Score),
		Initiator: "system",
		Risk: &state.RiskChange{
			Level:         c.Level,
			Score:         &score,
			Reasons:       c.Reasons,
			Principal:     c.Principal,
			PreviousLevel: c.PreviousLevel,
		},
	}
	switch {
	case c.Principal == PrincipalSession:
		sig.Subject = state.Subject{Format: state.FormatOpaque, ID: c.SessionID}
	case c.Issuer == "":
		sig.Subject = state.Subject{Format: state.FormatOpaque, ID: c.Subject}
	default:
		sig.Subject = state.Subject{Format: state.FormatIssSub, Iss: c.Issuer, Sub: c.Subject}
	}
	return sig
}

// newID returns 96 random bits in hex.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
