package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/demo"
)

func newDemoCmd() *cobra.Command {
	o := demo.Options{}
	var logLevel string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a self-contained tour: a sample API behind the Vigil gateway, tokens and curl commands",
		Long: `Run everything on loopback in one process, with embedded defaults and nothing to install:
a sample documents API (REST, server-sent events, WebSocket), a local token issuer with
four users, and Vigil in front of them (gateway, AuthZEN, admin API) with example Cedar
policies (roles, ownership, step-up). It prints ready-made tokens and curl commands with
the answer each one gets. Ctrl-C stops it.

  vigil demo
  vigil demo --addr 127.0.0.1:9000 --data-dir ./demo-data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch logLevel {
			case "debug", "info", "warn", "error":
			default:
				return fmt.Errorf("--log-level %q is not one of debug, info, warn, error", logLevel)
			}
			o.Out = cmd.OutOrStdout()
			o.Log = newLogger(stderr, config.Log{Level: logLevel, Format: "text"})
			d, err := demo.New(o)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return d.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", demo.DefaultAddr, "gateway listener HOST:PORT (the sample API behind Vigil)")
	f.StringVar(&o.PDPAddr, "pdp-addr", demo.DefaultPDPAddr, "main listener HOST:PORT (AuthZEN, /healthz, /readyz)")
	f.StringVar(&o.AdminAddr, "admin-addr", demo.DefaultAdminAddr, "admin API listener HOST:PORT")
	f.StringVar(&o.DataDir, "data-dir", "", "data directory (default: a temporary directory, removed at exit)")
	f.DurationVar(&o.TokenTTL, "token-ttl", demo.DefaultTokenTTL, "lifetime of the printed tokens")
	f.StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error")
	return cmd
}
