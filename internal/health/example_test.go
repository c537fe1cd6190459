package health_test

import (
	"context"
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vipd/vipd/internal/health"
	"github.com/vipd/vipd/vip"
)

// How cmd/vipd wires the package to the controller: every callback hands its
// event to the controller's loop, and the loop calls Set on reloads. (Compiled,
// not run: it would serve and poll until cancelled.)
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := hclog.NewNullLogger()

	type serviceEvent struct {
		vip     netip.Addr
		healthy bool
		reason  string
	}
	type peerEvent struct {
		node string
		st   *vip.NodeState // nil: failed
	}
	services := make(chan serviceEvent)
	peers := make(chan peerEvent)

	// Local service checks, one per VIP, from the config.
	mon := health.NewMonitor(log, func(v netip.Addr, healthy bool, reason string) {
		services <- serviceEvent{v, healthy, reason}
	})
	mon.Set(map[netip.Addr]health.CheckConfig{
		netip.MustParseAddr("192.0.2.10"): {Type: health.TypeTCP, Target: "127.0.0.1:80"},
	})
	go mon.Run(ctx)

	// This node's state, served to the peers. The getter returns a copy the
	// controller publishes (for example through an atomic.Pointer).
	current := func() vip.NodeState { return vip.NodeState{Node: "n1"} }
	go func() {
		if err := health.ServeState(ctx, "192.0.2.1:7946", health.NewStateHandler(current)); err != nil {
			log.Error("serving node state", "reason", err)
		}
	}()

	// The peers' states, from the cluster list.
	poller := health.NewPoller(log, []health.Peer{
		{Name: "n2", URL: "http://192.0.2.2:7946/state"},
		{Name: "n3", URL: "http://192.0.2.3:7946/state"},
	}, health.PollOptions{Interval: time.Second, Timeout: 500 * time.Millisecond}, func(node string, st *vip.NodeState) {
		peers <- peerEvent{node, st}
	})
	go poller.Run(ctx)

	// The controller's loop (here: until the example ends).
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-services:
			_ = e // the VIP's service health changed
		case e := <-peers:
			_ = e // rebuild the tables of the VIPs e.node serves
		}
	}
}
