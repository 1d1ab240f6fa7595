package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vigil-authz/vigil/internal/config"
	"github.com/vigil-authz/vigil/internal/server"
)

func newServeCmd() *cobra.Command {
	var cfgPath, policies, addr, adminAddr, dataDir string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve decisions (AuthZEN), the gateway and the admin API",
		Long: `Serve decisions from a configuration file or straight from a policy directory.

  vigil serve --policies examples/authzen-todo
  vigil serve --config vigil.yaml

Flags override the file. The policy directory is watched and reloaded on change;
a broken change is rejected and the running version keeps serving.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			applyFlags := func(cfg *config.Config) {
				if policies != "" {
					cfg.Policies.Dir = policies
				}
				if addr != "" {
					cfg.Server.Addr = addr
				}
				if adminAddr != "" {
					cfg.Server.AdminAddr = adminAddr
				}
				if dataDir != "" {
					cfg.DataDir = dataDir
				}
			}
			applyFlags(cfg)
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(stderr, cfg.Log)
			srv, err := server.New(cfg, log)
			if err != nil {
				return err
			}
			if cfgPath != "" {
				// SIGHUP (or POST /admin/v1/config/reload) re-reads the file
				// with the same flag overrides.
				srv.SetReloader(func() (*config.Config, error) {
					next, err := loadConfig(cfgPath)
					if err != nil {
						return nil, err
					}
					applyFlags(next)
					return next, next.Validate()
				})
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						_, _ = srv.Reload(ctx) // logged by Reload
					}
				}
			}()
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "configuration file (vigil.yaml)")
	f.StringVarP(&policies, "policies", "p", "", "policy directory (*.cedar, *.cedarschema, *.entities.json); overrides policies.dir")
	f.StringVar(&addr, "addr", "", "main listener HOST:PORT (default 127.0.0.1:8080); overrides server.addr")
	f.StringVar(&adminAddr, "admin-addr", "", "admin listener HOST:PORT (default 127.0.0.1:8081); overrides server.admin_addr")
	f.StringVar(&dataDir, "data-dir", "", "data directory (default ./vigil-data); overrides data_dir")

	return cmd
}
