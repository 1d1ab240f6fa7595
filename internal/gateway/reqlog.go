package gateway

import (
	"context"
	"log/slog"
)

// requestLog returns the gateway's logger with the request id (and, when
// not empty, the surface) attached, exactly as Logger.With would attach
// them. Logger.With has the handler format the attributes at once; most
// requests log nothing, so here that happens only when a line is written.
func (g *Gateway) requestLog(rid, surface string) *slog.Logger {
	rl := &requestLogger{h: requestHandler{base: g.log.Handler(), rid: rid, surface: surface}}
	rl.l = *slog.New(&rl.h)
	return &rl.l
}

// requestLogger holds a request's logger and its handler in one
// allocation.
type requestLogger struct {
	l slog.Logger
	h requestHandler
}

// requestHandler is base with the request attributes added on first use.
type requestHandler struct {
	base    slog.Handler
	rid     string
	surface string
}

var _ slog.Handler = (*requestHandler)(nil)

func (h *requestHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.base.Enabled(ctx, l)
}

func (h *requestHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.with().Handle(ctx, r)
}

func (h *requestHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with().WithAttrs(attrs)
}

func (h *requestHandler) WithGroup(name string) slog.Handler {
	return h.with().WithGroup(name)
}

// with is base with the request attributes, as Logger.With builds it.
func (h *requestHandler) with() slog.Handler {
	attrs := []slog.Attr{slog.String("request_id", h.rid)}
	if h.surface != "" {
		attrs = append(attrs, slog.String("surface", h.surface))
	}
	return h.base.WithAttrs(attrs)
}
