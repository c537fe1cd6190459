package vip_test

import (
	"context"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/vip"
)

// How cmd/vipd wires the controller. The advertiser (routing/bgp or
// routing/bird), the binder (vip/netlink) and the dataplane come from their
// packages; the health checks and the peer poller feed SetHealth and SetPeer;
// internal/api serves Status and cluster.NodeState and calls Drain, Undrain, Reload.
func Example() {
	var (
		adv  vip.Advertiser // routing/bgp.New(...) or routing/bird.New(...)
		bind vip.Binder     // vip/netlink
		dp   vip.Dataplane  // dataplane
	)
	if adv == nil {
		return // this example only shows the wiring
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "vipd"})
	cfg := vip.Config{
		Node: "a",
		VIPs: []vip.VIPConfig{{Addr: netip.MustParseAddr("192.0.2.10"), Services: []vip.Service{{Proto: 6, Port: 443}}}},
		Members: []vip.Member{
			{Name: "a", Addr4: netip.MustParseAddr("10.0.0.1")},
			{Name: "b", Addr4: netip.MustParseAddr("10.0.0.2")},
		},
		WithdrawGrace: 5 * time.Second,
		TableGrace:    10 * time.Second,
		DrainTimeout:  5 * time.Minute,
	}
	c, err := vip.New(cfg, vip.Deps{Advertiser: adv, Binder: bind, Dataplane: dp, Logger: log.Named("vip")})
	if err != nil {
		log.Error("starting", "error", err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	// Health checks and the peer poller report as results come in:
	//   c.SetHealth(addr, ok, reason); c.SetPeer(name, &state) or c.SetPeer(name, nil)
	// The host check vetoes an IPv6 VIP without a route back to clients:
	//   c.Hold(addr, "no IPv6 default route"); later c.Release(addr)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGUSR2)
	if s := <-sig; s == syscall.SIGTERM {
		// Drain and exit: withdraw, draining, inactive, unbind.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if err := c.Shutdown(sctx); err != nil {
			log.Warn("draining before exit", "error", err)
		}
		cancel()
	}
	// An upgrade restart (SIGUSR2 here) just stops the loop: routes,
	// bindings and the pinned dataplane stay for the next vipd to adopt.
	stop()
	<-done
}
