package gateway

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/vigil-authz/vigil/internal/engine"
)

// Kinds of long-lived requests.
const (
	StreamKindWebSocket = "websocket"
	StreamKindSSE       = "sse"
	StreamKindStreaming = "streaming"
)

// Close reasons of streams.
const (
	reasonRevoked  = "access revoked"
	reasonShutdown = "gateway shutting down"
)

// stream is one registered long-lived request.
type stream struct {
	id      uint64
	kind    string
	call    *call
	started time.Time
	// cut ends the stream; code is the WebSocket close code. It must not
	// block for long (it runs inside Reevaluate).
	cut  func(code websocket.StatusCode, reason string)
	once sync.Once
}

// close cuts the stream once; it reports whether this call did it.
func (s *stream) close(code websocket.StatusCode, reason string) bool {
	done := false
	s.once.Do(func() {
		done = true
		s.cut(code, reason)
	})
	return done
}

// registry holds the long-lived requests under evaluation.
type registry struct {
	mu   sync.Mutex
	m    map[uint64]*stream
	next uint64
	// closed is set at shutdown: streams registered afterwards are cut at
	// once.
	closed bool
	// sessions counts WebSocket sessions, which outlive
	// http.Server.Shutdown (the server does not track hijacked
	// connections).
	sessions int
}

func newRegistry() *registry { return &registry{m: make(map[uint64]*stream)} }

// add registers s; it reports false (and registers nothing) after
// shutdown began.
func (r *registry) add(s *stream) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.next++
	s.id = r.next
	r.m[s.id] = s
	return true
}

func (r *registry) remove(s *stream) {
	r.mu.Lock()
	delete(r.m, s.id)
	r.mu.Unlock()
}

func (r *registry) list() []*stream {
	r.mu.Lock()
	out := make([]*stream, 0, len(r.m))
	for _, s := range r.m {
		out = append(out, s)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b *stream) int { return cmp.Compare(a.id, b.id) })
	return out
}

// shut marks the registry closed and returns the registered streams.
func (r *registry) shut() []*stream {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return r.list()
}

func (r *registry) sessionStarted() {
	r.mu.Lock()
	r.sessions++
	r.mu.Unlock()
}

func (r *registry) sessionEnded() {
	r.mu.Lock()
	r.sessions--
	r.mu.Unlock()
}

func (r *registry) activeSessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions
}

// StreamInfo describes a registered long-lived request.
type StreamInfo struct {
	RequestID string
	Kind      string // StreamKindWebSocket, StreamKindSSE or StreamKindStreaming
	Principal string
	Action    string
	Resource  string
	Since     time.Time
}

// Streams lists the long-lived requests currently under evaluation, oldest
// first.
func (g *Gateway) Streams() []StreamInfo {
	ss := g.streams.list()
	out := make([]StreamInfo, len(ss))
	for i, s := range ss {
		p := AnonymousPrincipal
		if s.call.token != nil {
			p = principalUID(s.call.token)
		}
		out[i] = StreamInfo{
			RequestID: s.call.id,
			Kind:      s.kind,
			Principal: p.String(),
			Action:    s.call.match.Action.String(),
			Resource:  s.call.match.Resource.String(),
			Since:     s.started,
		}
	}
	return out
}

// Reevaluate re-decides every registered long-lived request with a fresh
// View and the current time, and closes those no longer allowed: WebSocket
// connections get a 1008 (policy violation) close frame and both sides are
// closed; event streams and other streaming responses are ended and their
// upstream requests cancelled. Call it after every policy swap and every
// live-state change.
//
// It is safe for concurrent use and bounded under bursts: calls made while
// a pass is running return at once and are covered by one more pass that
// starts, with a fresh View, when the running one ends. A call that finds
// no pass running returns when its pass has initiated every close (it does
// not wait for close handshakes).
func (g *Gateway) Reevaluate() {
	r := &g.reeval
	r.mu.Lock()
	if r.running {
		r.pending = true
		r.mu.Unlock()
		return
	}
	r.running = true
	r.mu.Unlock()
	for {
		g.reevaluateOnce()
		r.mu.Lock()
		if !r.pending {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.pending = false
		r.mu.Unlock()
	}
}

// reevalState coalesces concurrent Reevaluate calls.
type reevalState struct {
	mu      sync.Mutex
	running bool
	pending bool
}

// reevaluateOnce is one pass over the registered streams, spread over up
// to GOMAXPROCS workers for large registries.
func (g *Gateway) reevaluateOnce() {
	ss := g.streams.list()
	if len(ss) == 0 {
		return
	}
	v := g.views()
	now := g.now()
	var cut atomic.Int64
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(ss) {
				return
			}
			if g.recheck(v, now, ss[i]) {
				cut.Add(1)
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), (len(ss)+63)/64)
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	if n := cut.Load(); n > 0 {
		g.log.Info("re-evaluated streams", "streams", len(ss), "closed", n, "policy_version", policyVersion(v))
	}
}

// recheck re-decides one stream and closes it when denied; it reports
// whether it closed it.
func (g *Gateway) recheck(v engine.View, now time.Time, s *stream) bool {
	start := time.Now()
	allow := false
	// A replica that cannot prove it is fresh fails closed for open
	// streams too.
	if v.Ready() && v.Stale == nil {
		req := buildRequest(v, s.call, now, g.enrich, g.facts)
		res := g.decide(v, req)
		allow = res.Allow && res.Guard == ""
		if !allow {
			g.logDecision(g.requestLog(s.call.id, ""), &decided{call: s.call, req: req, res: res,
				verdict: g.judge(res, s.call.token), policySeq: v.PolicySeq}, SurfaceStream)
		}
	}
	g.record(SurfaceStream, allow, time.Since(start))
	if allow || !s.close(websocket.StatusPolicyViolation, reasonRevoked) {
		return false
	}
	g.log.Info("stream closed", "request_id", s.call.id, "kind", s.kind, "reason", reasonRevoked,
		"open_for", now.Sub(s.started).Round(time.Millisecond).String())
	return true
}

func policyVersion(v engine.View) string {
	if v.Policies == nil {
		return ""
	}
	return v.Policies.ID
}

// register adds s to the registry, or cuts it at once when the gateway is
// shutting down.
func (g *Gateway) register(s *stream) {
	if !g.streams.add(s) {
		s.close(websocket.StatusGoingAway, reasonShutdown)
	}
}

// closeStreams ends every registered stream and refuses new ones
// (shutdown).
func (g *Gateway) closeStreams() {
	for _, s := range g.streams.shut() {
		s.close(websocket.StatusGoingAway, reasonShutdown)
	}
}

// cutBody ends a streamed upstream body cleanly once the stream is cut:
// the read error caused by cancelling the upstream request becomes io.EOF,
// so ReverseProxy finishes the response (a chunked or HTTP/2 body ends
// normally and an EventSource client reconnects, to be decided afresh)
// instead of aborting the connection.
type cutBody struct {
	io.ReadCloser
	cut atomic.Bool
}

func (b *cutBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && b.cut.Load() {
		return n, io.EOF
	}
	return n, err
}

// waitSessions waits until every WebSocket session has ended or ctx is
// done.
func (g *Gateway) waitSessions(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for g.streams.activeSessions() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d WebSocket sessions still open: %w", g.streams.activeSessions(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
