// Package server wires Vigil's components into a running process: it builds
// them from the configuration, serves the main and admin listeners and
// shuts down in a documented order.
//
// Lifecycle: New constructs everything without serving: it opens the
// signal journal, joins the cluster (the replicated policy log, see
// cluster.go; a single node is a cluster of one) and waits for the policy
// log to be replayed (a broken policy directory is reported, not fatal: the
// process serves but /readyz says not ready until a valid set is active).
// Run serves until its context is cancelled, then shuts down: stop being
// ready → drain the listeners (bounded by server.shutdown_timeout) → stop
// the policy watcher → close stores (the replica, then the journal).
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vigil-authz/vigil/internal/admin"
	"github.com/vigil-authz/vigil/internal/apiauth"
	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/engine"
	"github.com/vigil-authz/vigil/internal/gateway"
	"github.com/vigil-authz/vigil/internal/metrics"
	"github.com/vigil-authz/vigil/internal/policy"
	"github.com/vigil-authz/vigil/internal/replica"
	"github.com/vigil-authz/vigil/internal/risk"
	"github.com/vigil-authz/vigil/internal/signal"
	"github.com/vigil-authz/vigil/internal/state"
)

// Server is a configured Vigil process.
type Server struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *metrics.Metrics
	store   *policy.Store
	engine  *engine.Engine
	watcher *policy.Watcher

	state    *state.Store
	replica  *replica.Replica
	risk     *risk.Engine
	dirs     *dirPublisher
	receiver *signal.Receiver
	gateway  *gateway.Gateway
	auth     swapAuth
	routes   swapRouter
	runCtx   context.Context // background tasks' context, set by Run
	reloader func() (*config.Config, error)
	reloadMu sync.Mutex
	// reloadBase is the configuration now in force for reloadable
	// sections (guarded by reloadMu; s.cfg itself never changes).
	reloadBase *config.Config
	enrich     gateway.EnrichFunc
	extra      []listener

	mainMux  *http.ServeMux
	adminMux *http.ServeMux
	admin    *admin.Handler

	// AdminToken is the generated admin credential when admin.keys is
	// empty ("" otherwise); AdminTokenFile is where it was written.
	AdminToken     string
	AdminTokenFile string

	stopping atomic.Bool
	// extra readiness checks added by optional components
	readyChecks []func() error
	closers     []func(context.Context) error
	runners     []func(context.Context) error

	mu        sync.Mutex
	mainAddr  net.Addr
	adminAddr net.Addr
}

// listener is an additional listener served alongside main and admin.
type listener struct {
	name     string
	addr     string
	serve    func(net.Listener) error
	shutdown func(context.Context) error
	bound    net.Addr
}

func (s *Server) addListener(l listener) { s.extra = append(s.extra, l) }

// New builds a Server from cfg. log may be nil. It performs the I/O needed
// to construct components (reading policy files, opening databases) but
// serves nothing until Run.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, metrics: metrics.New()}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data_dir %q: %w", cfg.DataDir, err)
	}
	// The replicated policy log is what survives a restart (see
	// cluster.go); the store keeps no file of its own.
	s.store = policy.NewStore(policy.StoreOptions{History: cfg.Policies.History})
	s.store.Subscribe(func(v *policy.Version) { s.metrics.PolicyActivated(v.ID, v.Policies) })
	if err := s.setupState(context.Background()); err != nil {
		return nil, err
	}
	s.engine = engine.New(s.store, s.state)
	s.enrich = enrichFromState
	if err := s.setupCluster(context.Background()); err != nil {
		s.state.Close()
		return nil, err
	}

	if err := s.loadInitialPolicies(); err != nil {
		return nil, err
	}
	if err := s.setupAdminAuth(); err != nil {
		return nil, err
	}

	s.mainMux = http.NewServeMux()
	s.adminMux = http.NewServeMux()
	for _, mux := range []*http.ServeMux{s.mainMux, s.adminMux} {
		mux.HandleFunc("GET /healthz", s.healthz)
		mux.HandleFunc("GET /readyz", s.readyz)
	}
	s.adminMux.Handle("GET /metrics", s.metrics.Handler())

	s.admin = admin.New(admin.Options{
		Policies: s.store,
		Log:      log.With("component", "admin"),
		OnActivate: func(source string, v *policy.Version, changed bool, err error) {
			s.recordReload(source, changed, err)
		},
		Activator: s.replica,
	})
	s.admin.MountSignals(s.state)
	s.admin.Handle("POST /admin/v1/config/reload", http.HandlerFunc(s.reloadHandler))
	adminKeys := apiauth.NewKeys(append(append([]string{}, cfg.Admin.Keys...), s.AdminToken)...)
	s.adminMux.Handle("/admin/", apiauth.Require(adminKeys, "vigil-admin", false, s.admin))

	if err := s.setupAuthZEN(); err != nil {
		return nil, err
	}
	var err error
	if s.risk, err = s.setupRisk(); err != nil {
		return nil, err
	}
	if err := s.setupGateway(context.Background()); err != nil {
		return nil, err
	}
	if err := s.setupSignals(); err != nil {
		return nil, err
	}
	return s, nil
}

// Store returns the policy store.
func (s *Server) Store() *policy.Store { return s.store }

// Engine returns the decision engine.
func (s *Server) Engine() *engine.Engine { return s.engine }

// Metrics returns the metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

func (s *Server) recordReload(source string, changed bool, err error) {
	kind, _, _ := strings.Cut(source, ":")
	switch {
	case err != nil:
		s.metrics.Reload(kind, "failure")
	case changed:
		s.metrics.Reload(kind, "success")
	default:
		s.metrics.Reload(kind, "unchanged")
	}
}

func (s *Server) setupAdminAuth() error {
	if len(s.cfg.Admin.Keys) > 0 {
		return nil
	}
	path := filepath.Join(s.cfg.DataDir, "admin.token")
	if data, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(data))) >= 16 {
		s.AdminToken, s.AdminTokenFile = strings.TrimSpace(string(data)), path
		return nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("generate admin token: %w", err)
	}
	tok := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token %s: %w", path, err)
	}
	s.AdminToken, s.AdminTokenFile = tok, path
	s.log.Info("generated an admin API token (admin.keys is empty)", "file", path)
	return nil
}

// Handle adds a handler to the main listener.
func (s *Server) Handle(pattern string, h http.Handler) { s.mainMux.Handle(pattern, h) }

// HandleAdmin adds an authenticated route to the admin API.
func (s *Server) HandleAdmin(pattern string, h http.Handler) { s.admin.Handle(pattern, h) }

// AddReadyCheck adds a readiness condition.
func (s *Server) AddReadyCheck(fn func() error) { s.readyChecks = append(s.readyChecks, fn) }

// AddCloser registers a function called at shutdown, in reverse order of
// registration, after the listeners have drained.
func (s *Server) AddCloser(fn func(context.Context) error) { s.closers = append(s.closers, fn) }

// AddRunner registers a background task run for the server's lifetime.
func (s *Server) AddRunner(fn func(context.Context) error) { s.runners = append(s.runners, fn) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Ready reports nil when the server can decide requests.
func (s *Server) Ready() error {
	if s.stopping.Load() {
		return errors.New("shutting down")
	}
	if s.store.Active() == nil {
		return errors.New("no valid policy set is active")
	}
	for _, fn := range s.readyChecks {
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

// ListenerAddr returns the bound address of an extra listener ("gateway")
// once Run is listening, or nil.
func (s *Server) ListenerAddr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.extra {
		if l.name == name {
			return l.bound
		}
	}
	return nil
}

// Addrs returns the bound main and admin addresses once Run is listening.
func (s *Server) Addrs() (mainAddr, adminAddr net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mainAddr, s.adminAddr
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	c := s.cfg.Server
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// MainHandler returns the main listener's handler (for tests and embedding).
func (s *Server) MainHandler() http.Handler { return s.mainMux }

// AdminHandler returns the admin listener's handler.
func (s *Server) AdminHandler() http.Handler { return s.adminMux }

// Run serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	mainLn, err := net.Listen("tcp", s.cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen on server.addr %s: %w", s.cfg.Server.Addr, err)
	}
	adminLn, err := net.Listen("tcp", s.cfg.Server.AdminAddr)
	if err != nil {
		mainLn.Close()
		return fmt.Errorf("listen on server.admin_addr %s: %w", s.cfg.Server.AdminAddr, err)
	}
	extraLns := make([]net.Listener, 0, len(s.extra))
	for i := range s.extra {
		ln, err := net.Listen("tcp", s.extra[i].addr)
		if err != nil {
			mainLn.Close()
			adminLn.Close()
			for _, l := range extraLns {
				l.Close()
			}
			return fmt.Errorf("listen on %s.listen %s: %w", s.extra[i].name, s.extra[i].addr, err)
		}
		extraLns = append(extraLns, ln)
	}
	s.mu.Lock()
	s.mainAddr, s.adminAddr = mainLn.Addr(), adminLn.Addr()
	for i, ln := range extraLns {
		s.extra[i].bound = ln.Addr()
	}
	s.mu.Unlock()

	mainSrv := s.httpServer(s.mainMux)
	adminSrv := s.httpServer(s.adminMux)

	runCtx, cancelRunners := context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Lock()
	s.runCtx = runCtx
	s.mu.Unlock()
	var wg sync.WaitGroup
	errc := make(chan error, 2+len(s.extra))
	if s.watcher != nil && s.cfg.Policies.WatchEnabled() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.watcher.Run(runCtx); err != nil {
				s.log.Error("policy watcher stopped", "err", err)
			}
		}()
	}
	for _, fn := range s.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("background task stopped", "err", err)
			}
		}()
	}
	go func() { errc <- serve(mainSrv, mainLn) }()
	go func() { errc <- serve(adminSrv, adminLn) }()
	for i, ln := range extraLns {
		l := s.extra[i]
		go func() { errc <- l.serve(ln) }()
		s.log.Info("vigil listening", "listener", l.name, "addr", ln.Addr().String())
	}
	s.log.Info("vigil listening", "addr", mainLn.Addr().String(), "admin_addr", adminLn.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}

	// Shutdown order: stop being ready, drain listeners, stop background
	// tasks, close stores.
	s.stopping.Store(true)
	s.log.Info("shutting down", "drain_timeout", s.cfg.Server.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Server.ShutdownTimeout)
	defer cancel()
	var shutdownErrs []error
	var emu sync.Mutex
	var swg sync.WaitGroup
	for _, srv := range []*http.Server{mainSrv, adminSrv} {
		swg.Add(1)
		go func() {
			defer swg.Done()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
		}()
	}
	for _, l := range s.extra {
		swg.Add(1)
		go func() {
			defer swg.Done()
			if err := l.shutdown(sctx); err != nil {
				emu.Lock()
				shutdownErrs = append(shutdownErrs, fmt.Errorf("shut down %s: %w", l.name, err))
				emu.Unlock()
			}
		}()
	}
	swg.Wait()
	cancelRunners()
	wg.Wait()
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](sctx); err != nil {
			shutdownErrs = append(shutdownErrs, err)
		}
	}
	if runErr != nil {
		return runErr
	}
	return errors.Join(shutdownErrs...)
}

func serve(srv *http.Server, ln net.Listener) error {
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
