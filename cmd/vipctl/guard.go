package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/routing/bird"
)

func birdGuardCmd() *cobra.Command {
	var (
		cfgPath string
		after   time.Duration
	)
	c := &cobra.Command{
		Use:   "bird-guard",
		Short: "Withdraw this node's VIP routes from BIRD when vipd has been gone for longer than routing.bird.guard_timeout",
		Long: `bird-guard bounds how long BIRD announces this node's VIPs without a vipd
(bird-ospf mode), as the graceful-restart time does in BGP mode. It runs
next to BIRD, watches whether a vipd holds the node's state directory and,
once none has for guard_timeout (default 60s), rewrites vipd's BIRD file
without any VIP route and reconfigures BIRD. A vipd that comes back within
the timeout (an upgrade restart, a crash restarted by systemd) changes
nothing. Run it as a service of its own (docs/ospf.md has the unit); one
guard per node: it holds an flock on bird-guard.lock in the state
directory, which the doctor checks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if cfg.Routing.Bird == nil {
				return fmt.Errorf("%s: routing.mode is %q, not bird-ospf: there is no BIRD to guard", cfgPath, cfg.Routing.Mode)
			}
			dir := cfg.Node.StateDir
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("creating state directory %s: %w", dir, err)
			}
			lock, err := os.OpenFile(filepath.Join(dir, bird.GuardLockFile), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				return fmt.Errorf("opening the guard's lock: %w", err)
			}
			defer lock.Close()
			if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				if errors.Is(err, syscall.EWOULDBLOCK) {
					return fmt.Errorf("another bird-guard runs for %s", dir)
				}
				return fmt.Errorf("locking %s: %w", lock.Name(), err)
			}
			timeout := cfg.Routing.Bird.GuardTimeout
			if cmd.Flags().Changed("after") {
				timeout = after
			}
			log := hclog.New(&hclog.LoggerOptions{Name: "vipctl", Output: cmd.ErrOrStderr(), Level: hclog.Info})
			g, err := bird.NewGuard(bird.GuardConfig{
				Bird:    *cfg.Routing.Bird,
				Timeout: timeout,
				Held:    func() (bool, error) { return statedir.Held(dir) },
			}, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return g.Run(ctx)
		},
	}
	c.Flags().StringVarP(&cfgPath, "config", "c", config.DefaultPath, "vipd config file")
	c.Flags().DurationVar(&after, "after", 0, "withdraw after this long without vipd (overrides routing.bird.guard_timeout)")
	return c
}
