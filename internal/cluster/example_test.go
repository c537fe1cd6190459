package cluster_test

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vipd/vipd/internal/cluster"
)

// How the daemon wires the package to the controller: this node's document
// is served to the peers, signed with the cluster key, and every member's is
// polled, verified and handed to the controller's loop, one Update at a
// time. (Compiled, not run: it would serve and poll until cancelled.)
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := hclog.NewNullLogger()

	// The cluster key, from a file that is the same on every member. A
	// reload calls keys.Set with the file's new contents.
	raw, err := cluster.LoadKeyFile("/etc/vipd/cluster.key")
	if err != nil {
		log.Error("loading the cluster key", "reason", err)
		return
	}
	keys, err := cluster.NewKeyring(raw...)
	if err != nil {
		log.Error("loading the cluster key", "reason", err)
		return
	}
	// The verifier and the membership outlive pollers (a reload restarts
	// the poller, not them): replay marks and counters survive.
	verifier := cluster.NewVerifier(keys, cluster.VerifierOptions{})
	members := cluster.NewMembership(cluster.WithLogger(log))
	members.SetLocal(cluster.ComputeDigests(cluster.ClusterSpec{Seed: 42}))

	// This node's state, served to the peers. The getter returns a copy the
	// controller publishes (for example through an atomic.Pointer).
	current := func() cluster.NodeState { return cluster.NodeState{Node: "n1"} }
	go func() {
		h := cluster.NewHandler(current, cluster.SignWith(keys, nil))
		if err := cluster.ListenAndServe(ctx, "192.0.2.1:7946", h); err != nil {
			log.Error("serving node state", "reason", err)
		}
	}()

	// The peers' states, from the cluster list. Backend "etcd" would be
	// etcd.New(log, etcd.Config{...}, consume) instead: the same Source.
	updates := make(chan cluster.Update)
	var src cluster.Source = cluster.NewPollSource(log, []cluster.Member{
		{Name: "n2", URL: "http://192.0.2.2:7946/state"},
		{Name: "n3", URL: "http://192.0.2.3:7946/state"},
	}, cluster.PollOptions{
		Interval: time.Second, Timeout: 500 * time.Millisecond,
		Verifier: verifier, Membership: members,
	}, func(u cluster.Update) { updates <- u })
	go src.Run(ctx)

	// The controller's loop (here: until the example ends).
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-updates:
			_ = u // apply u.States in one step, then rebuild the tables
		}
	}
}
