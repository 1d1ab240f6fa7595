package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// WebSocket pass-through terminates the WebSocket protocol on both sides
// (client ↔ gateway, gateway ↔ upstream) and relays messages, so that the
// gateway can end a session it no longer allows with a proper close frame
// (1008 policy violation) at any moment, even in the middle of a message.
// Messages keep their type and content; ping/pong is answered per hop;
// close codes and reasons are relayed; per-message compression is not
// negotiated.

// isWebSocket reports whether r asks for a WebSocket upgrade (RFC 6455
// §4.1, HTTP/1.1).
func isWebSocket(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ProtoAtLeast(1, 1) &&
		headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

// headerHasToken reports whether the comma-separated header key lists
// token (case-insensitively).
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func headerTokens(h http.Header, key string) []string {
	var out []string
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// webSocketHandshakeHeaders are set by the WebSocket libraries on each hop
// and never copied between hops.
var webSocketHandshakeHeaders = []string{
	"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions",
	"Sec-Websocket-Protocol", "Sec-Websocket-Accept",
}

// upstreamURL joins the upstream base URL and the request path and query,
// keeping the path's escaping as received.
func upstreamURL(target *url.URL, r *http.Request) *url.URL {
	u := *target
	basePath := strings.TrimSuffix(target.EscapedPath(), "/")
	u.Path = strings.TrimSuffix(target.Path, "/") + r.URL.Path
	if raw := basePath + r.URL.EscapedPath(); raw != u.Path {
		u.RawPath = raw
	} else {
		u.RawPath = ""
	}
	u.RawQuery = r.URL.RawQuery
	u.Fragment, u.RawFragment = "", ""
	return &u
}

// proxyWebSocket relays a WebSocket session between the client and the
// upstream and keeps it registered for re-evaluation.
func (g *Gateway) proxyWebSocket(w http.ResponseWriter, r *http.Request, st *proxyState) {
	rid := st.in.rid
	log := g.log.With("request_id", rid, "upstream", st.up.cfg.Name)

	h := r.Header.Clone()
	removeHopByHop(h)
	for _, k := range webSocketHandshakeHeaders {
		h.Del(k)
	}
	g.outboundHeaders(h, r, st)
	opts := &websocket.DialOptions{
		HTTPClient:   st.up.wsClient,
		HTTPHeader:   h,
		Subprotocols: headerTokens(r.Header, "Sec-WebSocket-Protocol"),
	}
	if st.up.cfg.PreserveHost {
		opts.Host = r.Host
	}
	// The dial context bounds the handshake only: once the upstream
	// answers 101 the connection belongs to the gateway.
	dctx, cancel := context.WithTimeout(r.Context(), st.up.cfg.DialTimeout+st.up.cfg.ResponseHeaderTimeout)
	upc, resp, err := websocket.Dial(dctx, upstreamURL(st.up.target, r).String(), opts)
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			// The upstream refused the upgrade: relay its answer.
			log.Info("upstream refused the WebSocket upgrade", "status", resp.StatusCode)
			relayRefusal(w, resp)
			return
		}
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			log.Warn("upstream WebSocket handshake timed out", "err", err)
			writeProblem(w, http.StatusGatewayTimeout, detailUpstreamSlow, rid, nil)
			return
		}
		log.Warn("upstream WebSocket handshake failed", "err", err)
		writeProblem(w, http.StatusBadGateway, detailUpstreamDown, rid, nil)
		return
	}
	upc.SetReadLimit(g.cfg.WebSocket.MaxMessageBytes)

	for k, vv := range resp.Header {
		if isHopByHop(k) || k == requestIDHeader || strings.HasPrefix(k, "Sec-Websocket-") || k == "Content-Length" {
			continue
		}
		for _, v := range vv {
			w.Header().Add(k, v)
		}
	}
	acc := &websocket.AcceptOptions{
		// Origin checks belong to the upstream, which sees the client's
		// Origin header.
		InsecureSkipVerify: true,
	}
	if p := upc.Subprotocol(); p != "" {
		acc.Subprotocols = []string{p}
	}
	// A hijacked connection keeps the server's read and write deadlines;
	// a WebSocket session has none.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	cc, err := websocket.Accept(w, r, acc)
	if err != nil {
		log.Info("client WebSocket handshake failed", "err", err)
		_ = upc.Close(websocket.StatusGoingAway, "client handshake failed")
		return
	}
	cc.SetReadLimit(g.cfg.WebSocket.MaxMessageBytes)

	g.streams.sessionStarted()
	defer g.streams.sessionEnded()
	s := &stream{kind: StreamKindWebSocket, call: st.call, started: g.now()}
	s.cut = func(code websocket.StatusCode, reason string) {
		// Close performs the close handshake (bounded by the library at
		// 5 s per step); run both without blocking the caller.
		go func() { _ = cc.Close(code, reason) }()
		go func() { _ = upc.Close(code, reason) }()
	}
	g.register(s)
	defer g.streams.remove(s)

	// Relay until either side ends. A close from one side is passed on to
	// the other with its code and reason; when a side fails without a
	// close, the client gets 1014 (bad gateway) and the upstream 1001
	// (going away), whichever of them is still there to receive it.
	ctx := context.WithoutCancel(r.Context())
	errc := make(chan relayResult, 2)
	go func() { errc <- relayResult{toUpstream: true, err: g.relay(ctx, upc, cc)} }()
	go func() { errc <- relayResult{err: g.relay(ctx, cc, upc)} }()
	first := <-errc
	var ce websocket.CloseError
	switch {
	case errors.As(first.err, &ce) && first.toUpstream:
		go func() { _ = upc.Close(ce.Code, ce.Reason) }()
	case errors.As(first.err, &ce):
		go func() { _ = cc.Close(ce.Code, ce.Reason) }()
	default:
		go func() { _ = cc.Close(websocket.StatusBadGateway, "connection lost") }()
		go func() { _ = upc.Close(websocket.StatusGoingAway, "connection lost") }()
	}
	<-errc
	// Both relays are done; wait for the close handshakes (bounded by the
	// library) and release the connections.
	_ = cc.CloseNow()
	_ = upc.CloseNow()
	log.Debug("WebSocket session ended", "client_to_upstream_ended_first", first.toUpstream, "err", first.err)
}

type relayResult struct {
	toUpstream bool // the relay that ended was client → upstream
	err        error
}

// relay copies messages from src to dst until src ends or either fails.
func (g *Gateway) relay(ctx context.Context, dst, src *websocket.Conn) error {
	buf := g.buffers.Get()
	defer g.buffers.Put(buf)
	for {
		typ, r, err := src.Reader(ctx)
		if err != nil {
			return err
		}
		wr, err := dst.Writer(ctx, typ)
		if err != nil {
			return err
		}
		if _, err := io.CopyBuffer(wr, r, buf); err != nil {
			return err
		}
		if err := wr.Close(); err != nil {
			return err
		}
	}
}

// relayRefusal sends the upstream's non-101 answer to a WebSocket upgrade
// to the client (status, end-to-end headers and the start of the body).
func relayRefusal(w http.ResponseWriter, resp *http.Response) {
	for k, vv := range resp.Header {
		if isHopByHop(k) || k == requestIDHeader || k == "Content-Length" {
			continue
		}
		for _, v := range vv {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if resp.Body != nil {
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 1024))
	}
}
