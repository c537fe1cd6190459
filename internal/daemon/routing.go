package daemon

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/bird"
)

// openAdvertiser starts the routing mode's advertiser: the one place the
// daemon names a routing mode's package. When the previous vipd left routes
// announced (a crash, kill -9 or an upgrade exit: routes is not empty), the
// BGP speaker starts as a graceful restarter announcing them before any
// neighbor is configured and before the controller decides anything. In
// BIRD mode BIRD kept running with them: nothing to do.
func openAdvertiser(ctx context.Context, cfg *config.Config, routes []routing.Route, log hclog.Logger) (routing.Advertiser, error) {
	switch cfg.Routing.Mode {
	case routing.ModeBGP:
		s, err := bgp.New(*cfg.Routing.BGP, log.Named("bgp"))
		if err != nil {
			return nil, fmt.Errorf("configuring BGP: %w", err)
		}
		opts := bgp.StartOptions{}
		if len(routes) > 0 {
			opts.Routes = routes
			opts.Restarting = cfg.Routing.BGP.GracefulRestart.Enabled
		}
		if err := s.Start(ctx, opts); err != nil {
			return nil, fmt.Errorf("starting BGP: %w", err)
		}
		return s, nil
	case routing.ModeBirdOSPF:
		a, err := bird.New(ctx, *cfg.Routing.Bird, log.Named("bird"))
		if err != nil {
			return nil, fmt.Errorf("configuring BIRD: %w", err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("%s: no routing section", cfg.File)
}
