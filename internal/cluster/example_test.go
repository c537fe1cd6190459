package cluster_test

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vipd/vipd/internal/cluster"
)

// How the daemon wires the package to the controller: this node's document
// is served to the peers, and every member's is polled and handed to the
// controller's loop. (Compiled, not run: it would serve and poll until
// cancelled.)
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := hclog.NewNullLogger()

	type peerEvent struct {
		node string
		st   *cluster.NodeState // nil: failed
	}
	peers := make(chan peerEvent)

	// This node's state, served to the peers. The getter returns a copy the
	// controller publishes (for example through an atomic.Pointer).
	current := func() cluster.NodeState { return cluster.NodeState{Node: "n1"} }
	go func() {
		if err := cluster.ListenAndServe(ctx, "192.0.2.1:7946", cluster.NewHandler(current)); err != nil {
			log.Error("serving node state", "reason", err)
		}
	}()

	// The peers' states, from the cluster list; the membership keeps the
	// latest view of each for status.
	members := cluster.NewMembership()
	poller := cluster.NewPoller(log, []cluster.Member{
		{Name: "n2", URL: "http://192.0.2.2:7946/state"},
		{Name: "n3", URL: "http://192.0.2.3:7946/state"},
	}, cluster.PollOptions{Interval: time.Second, Timeout: 500 * time.Millisecond}, func(node string, st *cluster.NodeState) {
		members.Record(node, st)
		peers <- peerEvent{node, st}
	})
	go poller.Run(ctx)

	// The controller's loop (here: until the example ends).
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-peers:
			_ = e // rebuild the tables of the VIPs e.node serves
		}
	}
}
