package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"
)

// upstream is one configured upstream with its transports and proxy.
type upstream struct {
	cfg    Upstream
	target *url.URL
	// transport serves proxied requests (HTTP/1.1, and HTTP/2 over TLS).
	transport *http.Transport
	// wsClient dials WebSocket handshakes over HTTP/1.1 only and never
	// follows redirects.
	wsClient *http.Client
	proxy    *httputil.ReverseProxy
}

func newUpstream(cfg Upstream, g *Gateway) (*upstream, error) {
	target, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: parse url: %w", cfg.Name, err)
	}
	var tlsCfg *tls.Config
	if target.Scheme == "https" {
		if tlsCfg, err = cfg.TLS.clientConfig(); err != nil {
			return nil, fmt.Errorf("upstream %q: %w", cfg.Name, err)
		}
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                  nil, // never route upstream traffic through an environment proxy
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    cfg.DialTimeout,
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		MaxIdleConns:           cfg.MaxIdleConnsPerHost * 4,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		MaxResponseHeaderBytes: 1 << 20,
		ForceAttemptHTTP2:      true,
	}
	ws := t.Clone()
	ws.ForceAttemptHTTP2 = false
	ws.Protocols = new(http.Protocols)
	ws.Protocols.SetHTTP1(true)
	if ws.TLSClientConfig != nil {
		ws.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	u := &upstream{
		cfg:       cfg,
		target:    target,
		transport: t,
		wsClient: &http.Client{
			Transport: ws,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	u.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      t,
		FlushInterval:  0, // streaming responses and event streams flush immediately (ReverseProxy detects them)
		BufferPool:     g.buffers,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	return u, nil
}

// clientConfig builds the TLS client configuration of an https upstream.
func (c UpstreamTLS) clientConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // explicit opt-in, documented as development only
	}
	if c.CA != "" {
		pool, err := loadPool(c.CA)
		if err != nil {
			return nil, fmt.Errorf("tls.ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	if c.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("tls.cert: load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// serverConfig builds the listener's TLS configuration.
func (c *ListenerTLS) serverConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("tls.cert: load certificate: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if c.ClientCA != "" {
		pool, err := loadPool(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca: %w", err)
		}
		cfg.ClientCAs = pool
	}
	switch c.ClientAuth {
	case "request":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		cfg.ClientAuth = tls.NoClientCert
	}
	return cfg, nil
}

// bufferPool shares 32 KiB copy buffers between all proxied responses.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

// Get returns a buffer.
func (b *bufferPool) Get() []byte { return *(b.p.Get().(*[]byte)) }

// Put returns a buffer to the pool.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		buf = buf[:cap(buf)]
		b.p.Put(&buf)
	}
}
