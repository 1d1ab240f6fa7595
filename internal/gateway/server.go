package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
)

// NewServer returns an http.Server for the gateway with the configured
// timeouts, header limit, protocols (HTTP/1.1; HTTP/2 over TLS; cleartext
// HTTP/2 when h2c is set) and TLS configuration. Addr is the configured
// listen address. Shutdown drains every server created here.
func (g *Gateway) NewServer() (*http.Server, error) {
	c := g.cfg
	srv := &http.Server{
		Addr:              c.Listen,
		Handler:           g,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	if c.TLS != nil {
		tc, err := c.TLS.serverConfig()
		if err != nil {
			return nil, fmt.Errorf("gateway listener: %w", err)
		}
		srv.TLSConfig = tc
		srv.Protocols.SetHTTP2(true)
	} else if c.H2C {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	g.mu.Lock()
	g.servers = append(g.servers, srv)
	g.mu.Unlock()
	return srv, nil
}

// Serve serves the gateway on ln (over TLS when configured) until Shutdown.
// It returns nil after a graceful shutdown.
func (g *Gateway) Serve(ln net.Listener) error {
	srv, err := g.NewServer()
	if err != nil {
		return err
	}
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// ListenAndServe listens on the configured address and serves until
// Shutdown.
func (g *Gateway) ListenAndServe() error {
	if g.cfg.Listen == "" {
		return errors.New("gateway: listen is not configured")
	}
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", g.cfg.Listen, err)
	}
	return g.Serve(ln)
}

// Shutdown stops the gateway gracefully: new requests are refused (503),
// every registered stream is closed (WebSocket 1001 going away), the
// servers created by NewServer stop listening and drain in-flight requests,
// and the WebSocket sessions end. When ctx expires first, the servers are
// closed forcibly and the context error is returned. Call Close once
// nothing serves the gateway any more.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.stopping.Store(true)
	g.closeStreams()

	g.mu.Lock()
	servers := append([]*http.Server(nil), g.servers...)
	g.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(servers)+1)
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
				errs[i] = fmt.Errorf("gateway: drain %s: %w", srv.Addr, err)
			}
		}()
	}
	errs[len(servers)] = g.waitSessions(ctx)
	wg.Wait()
	return errors.Join(errs...)
}

// Close releases the GeoIP database. Call it after Shutdown, when no
// listener (the gateway's own or one it is mounted on) serves the gateway
// any more.
func (g *Gateway) Close() error {
	if err := g.geo.close(); err != nil {
		return fmt.Errorf("gateway: close geoip database: %w", err)
	}
	return nil
}
