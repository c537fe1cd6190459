package etcd

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/cluster/etcd/etcdtest"
)

var vipA = netip.MustParseAddr("198.51.100.10")

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, cluster.KeySize) }

func docState(node string, gen uint64, state cluster.ServeState) cluster.NodeState {
	return cluster.NodeState{Node: node, Generation: gen, VIPs: map[netip.Addr]cluster.VIPState{
		vipA: {State: state, Healthy: true},
	}}
}

// node is one simulated vipd in the test process: an etcd Backend with the
// consumer a director would have, recording every update and the view it
// leads to.
type node struct {
	name     string
	b        *Backend
	members  *cluster.Membership
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once

	mu      sync.Mutex
	updates []cluster.Update
	view    map[string]*cluster.NodeState
	views   map[int64]map[string]*cluster.NodeState // the view after each revision
	changed chan struct{}
}

type rigOptions struct {
	ttl     time.Duration
	refresh time.Duration
	keys    [][]byte
}

func startNode(t *testing.T, c *etcdtest.Cluster, name string, names []string, o rigOptions) *node {
	t.Helper()
	if o.ttl == 0 {
		o.ttl = 3 * time.Second // margin for a loaded test machine
	}
	if o.refresh == 0 {
		o.refresh = 10 * time.Second
	}
	if o.keys == nil {
		o.keys = [][]byte{testKey(1)}
	}
	ring, err := cluster.NewKeyring(o.keys...)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, members: cluster.NewMembership(), view: map[string]*cluster.NodeState{},
		views: map[int64]map[string]*cluster.NodeState{}, changed: make(chan struct{}, 1)}
	n.b, err = New(testLogger(t, name), Config{
		Self: name, Members: names, Endpoints: c.Endpoints(),
		LeaseTTL: o.ttl, Refresh: o.refresh, RequestTimeout: time.Second, DialTimeout: time.Second,
		Keys: ring, Verifier: cluster.NewVerifier(ring, cluster.VerifierOptions{}),
		Membership: n.members, Dialer: c.Dial,
	}, n.consume)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- n.b.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// stop ends the node without revoking its lease, as a crash would (the
// publisher never revokes). It may be called again.
func (n *node) stop() {
	n.stopOnce.Do(func() {
		n.cancel()
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			panic("Backend.Run did not return after cancel")
		}
	})
}

func (n *node) consume(u cluster.Update) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.updates = append(n.updates, u)
	for name, st := range u.States {
		n.view[name] = st
	}
	n.views[u.Revision] = maps.Clone(n.view)
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// state returns the node's view of member name (nil: failed or unknown).
func (n *node) state(name string) *cluster.NodeState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.view[name]
}

// failures counts the updates that reported name failed after it was up
// (the first snapshot reports members not there yet as nil: not a
// failure).
func (n *node) failures(name string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	f, up := 0, false
	for _, u := range n.updates {
		st, ok := u.States[name]
		switch {
		case !ok:
		case st != nil:
			up = true
		case up:
			f++
			up = false
		}
	}
	return f
}

// waitFor waits until cond holds on the node's view.
func (n *node) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not within %s; backend %+v", n.name, what, timeout, n.members.Backend())
		}
		select {
		case <-n.changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
	return time.Since(start)
}

func (n *node) waitGeneration(t *testing.T, member string, gen uint64, timeout time.Duration) time.Duration {
	t.Helper()
	return n.waitFor(t, fmt.Sprintf("%s at generation %d", member, gen), timeout, func() bool {
		st := n.state(member)
		return st != nil && st.Generation == gen
	})
}

func (n *node) waitFailed(t *testing.T, member string, timeout time.Duration) time.Duration {
	t.Helper()
	return n.waitFor(t, member+" failed", timeout, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		st, ok := n.view[member]
		return ok && st == nil
	})
}

func (n *node) view1(t *testing.T, member string) cluster.MemberView {
	t.Helper()
	for _, v := range n.members.Views() {
		if v.Name == member {
			return v
		}
	}
	t.Fatalf("%s has no view of %s", n.name, member)
	return cluster.MemberView{}
}

// testLogger logs to the test, prefixed with the node's name.
func testLogger(t *testing.T, name string) hclog.Logger {
	if !testing.Verbose() {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: tWriter{t}, Level: hclog.Info})
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// sameRevisionSameView checks the property the backend exists for: every
// node that was at revision R had the same member states at R (its own
// state aside: a node does not watch itself).
func sameRevisionSameView(t *testing.T, nodes []*node) {
	t.Helper()
	type seen struct {
		by   string
		view map[string]*cluster.NodeState
	}
	at := map[int64]seen{}
	compared := 0
	for _, n := range nodes {
		n.mu.Lock()
		for rev, v := range n.views {
			if prev, ok := at[rev]; ok {
				compared++
				for _, name := range slices.Sorted(maps.Keys(v)) {
					if name == prev.by || name == n.name {
						continue
					}
					if !v[name].Equal(prev.view[name]) {
						t.Errorf("revision %d: %s sees %s as %+v, %s as %+v", rev, n.name, name, v[name], prev.by, prev.view[name])
					}
				}
			} else {
				at[rev] = seen{n.name, v}
			}
		}
		n.mu.Unlock()
	}
	if compared == 0 {
		t.Error("no revision seen by two nodes: nothing compared")
	}
}

// helperEnv names the environment of the helper process that plays a vipd
// to be killed.
const helperEnv = "VIPD_ETCD_HELPER"

// TestHelperVipd is not a test: run as a subprocess with helperEnv set, it
// is a vipd publishing its document until it is killed.
func TestHelperVipd(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	var name, endpoints string
	if _, err := fmt.Sscan(spec, &name, &endpoints); err != nil {
		fmt.Fprintln(os.Stderr, "bad helper spec:", err)
		os.Exit(2)
	}
	ring, _ := cluster.NewKeyring(testKey(1))
	b, err := New(hclog.NewNullLogger(), Config{
		Self: name, Members: []string{name}, Endpoints: strings.Split(endpoints, ","),
		LeaseTTL: 2 * time.Second, Refresh: 10 * time.Second,
		Keys: ring, Verifier: cluster.NewVerifier(ring, cluster.VerifierOptions{}),
	}, func(cluster.Update) {})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	b.Publish(docState(name, 1, cluster.StateActive))
	err = b.Run(context.Background())
	fmt.Fprintln(os.Stderr, "helper Run returned:", err)
	os.Exit(3)
}
