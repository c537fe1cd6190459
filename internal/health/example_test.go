package health_test

import (
	"context"
	"net/netip"

	"github.com/hashicorp/go-hclog"
	"github.com/vipd/vipd/internal/health"
)

// How the daemon wires the package to the controller: every report hands
// its event to the controller's loop, and the loop calls Set on reloads.
// (Compiled, not run: it would check until cancelled.)
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := hclog.NewNullLogger()

	type serviceEvent struct {
		vip     netip.Addr
		healthy bool
		reason  string
	}
	services := make(chan serviceEvent)

	// Local service checks, one per VIP, from the config.
	mon := health.NewMonitor(log, func(v netip.Addr, healthy bool, reason string) {
		services <- serviceEvent{v, healthy, reason}
	})
	mon.Set(map[netip.Addr]health.CheckConfig{
		netip.MustParseAddr("192.0.2.10"): {Type: health.TypeTCP, Target: "127.0.0.1:80"},
	})
	go mon.Run(ctx)

	// The controller's loop (here: until the example ends).
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-services:
			_ = e // the VIP's service health changed
		}
	}
}
