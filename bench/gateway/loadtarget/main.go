// Command loadtarget is the set of helpers bench/gateway/run.sh measures
// Vigil's gateway against, all on loopback:
//
//	loadtarget backend -addr 127.0.0.1:9101
//	    the API behind every proxy: a small JSON document for any GET
//	loadtarget proxy -addr 127.0.0.1:9102 -upstream http://127.0.0.1:9101
//	    a bare net/http/httputil.ReverseProxy with the transport settings
//	    of Vigil's gateway: the baseline the gateway is compared with
//	loadtarget issuer -addr 127.0.0.1:9103 -tokens 20000 -out tokens.txt
//	    an identity.LocalIssuer serving discovery and a JWKS, after writing
//	    that many distinct access tokens (one per line) to -out
//	loadtarget vigil -config vigil.yaml -cpuprofile cpu.pprof -memprofile mem.pprof
//	    Vigil (internal/server, as `vigil serve` runs it) in-process under
//	    the profilers, for `go tool pprof` (proxy takes the same flags)
//
// Each serves until SIGINT or SIGTERM.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/identity"
	"github.com/vigil-authz/vigil/internal/server"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadtarget backend|proxy|issuer|vigil [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	switch os.Args[1] {
	case "backend":
		err = runBackend(ctx, os.Args[2:])
	case "proxy":
		err = runProxy(ctx, os.Args[2:], log)
	case "issuer":
		err = runIssuer(ctx, os.Args[2:])
	case "vigil":
		err = runVigil(ctx, os.Args[2:], log)
	default:
		err = fmt.Errorf("unknown subcommand %q (want backend, proxy, issuer or vigil)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtarget:", err)
		os.Exit(1)
	}
}

// serve serves h on addr until ctx is cancelled.
func serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// document is what the backend answers: a typical small JSON resource.
const document = `{"id":"doc-1","title":"Quarterly plan","owner":"alice","body":"Ship continuous authorization.","updated":"2026-11-28T12:00:00Z"}` + "\n"

func runBackend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:9101", "listen address")
	_ = fs.Parse(args)
	body := []byte(document)
	return serve(ctx, *addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body)
	}))
}

func runProxy(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:9102", "listen address")
	upstream := fs.String("upstream", "http://127.0.0.1:9101", "upstream base URL")
	prof := profileFlags(fs)
	_ = fs.Parse(args)
	target, err := url.Parse(*upstream)
	if err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	// The same transport settings as the gateway's upstreams (defaults of
	// gateway.Upstream), so that only the authorization work differs.
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           dialer.DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		ForceAttemptHTTP2:     true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  t,
		BufferPool: &pool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}},
		ErrorLog:   slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return prof.run(func() error { return serve(ctx, *addr, rp) })
}

type pool struct{ p sync.Pool }

func (b *pool) Get() []byte { return *(b.p.Get().(*[]byte)) }
func (b *pool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		buf = buf[:cap(buf)]
		b.p.Put(&buf)
	}
}

func runIssuer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("issuer", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:9103", "listen address (the issuer URL is http://ADDR)")
	n := fs.Int("tokens", 1, "number of distinct tokens to mint")
	out := fs.String("out", "tokens.txt", "file the tokens are written to, one per line")
	audience := fs.String("aud", "vigil-bench", "audience")
	sub := fs.String("sub", "bob", "subject")
	roles := fs.String("roles", "editor", "comma-separated roles")
	ttl := fs.Duration("ttl", 2*time.Hour, "token lifetime")
	_ = fs.Parse(args)
	if *n < 1 || *n > 1_000_000 {
		return errors.New("-tokens must be between 1 and 1000000")
	}
	li, err := identity.NewLocalIssuer("http://"+*addr, "ES256")
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("create %s: %w", *out, err)
	}
	w := bufio.NewWriter(f)
	now := time.Now()
	for i := range *n {
		tok, err := li.Mint(map[string]any{
			"sub": *sub, "aud": *audience, "client_id": "bench",
			"roles": strings.Split(*roles, ","), "acr": "urn:vigil:demo:mfa", "amr": []string{"pwd", "otp"},
			"auth_time": now.Unix(), "sid": fmt.Sprintf("bench-%d", i),
		}, *ttl)
		if err != nil {
			f.Close()
			return err
		}
		fmt.Fprintln(w, tok)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return serve(ctx, *addr, li)
}

func runVigil(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("vigil", flag.ExitOnError)
	path := fs.String("config", "vigil.yaml", "Vigil configuration file")
	prof := profileFlags(fs)
	_ = fs.Parse(args)
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	return prof.run(func() error { return srv.Run(ctx) })
}

// profiles are the optional -cpuprofile and -memprofile of a subcommand.
type profiles struct{ cpu, mem *string }

func profileFlags(fs *flag.FlagSet) profiles {
	return profiles{
		cpu: fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file"),
		mem: fs.String("memprofile", "", "write an allocation profile (go tool pprof -sample_index=alloc_space) at exit"),
	}
}

// run runs fn under the requested profilers.
func (p profiles) run(fn func() error) error {
	if *p.cpu != "" {
		f, err := os.Create(*p.cpu)
		if err != nil {
			return fmt.Errorf("create %s: %w", *p.cpu, err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start the CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	err := fn()
	if *p.mem != "" {
		f, ferr := os.Create(*p.mem)
		if ferr != nil {
			return errors.Join(err, fmt.Errorf("create %s: %w", *p.mem, ferr))
		}
		defer f.Close()
		if werr := pprof.Lookup("allocs").WriteTo(f, 0); werr != nil {
			return errors.Join(err, fmt.Errorf("write %s: %w", *p.mem, werr))
		}
	}
	return err
}
