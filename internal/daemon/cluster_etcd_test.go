package daemon

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/cluster/etcd"
	"github.com/vipd/vipd/internal/cluster/etcd/etcdtest"
)

// etcdNodeConfig is nodeConfig for member self of n1, n2 (daemons, state
// served on ports) and n3 (played by the test), backend etcd.
func etcdNodeConfig(dir, self string, ports map[string]int, endpoints []string) string {
	s := nodeConfig(dir, ports["n1"], vipA)
	if self != "n1" {
		s = strings.Replace(s, "[node]\nname = \"n1\"\nunderlay_v4 = \"192.0.2.11\"", "[node]\nname = \""+self+"\"\nunderlay_v4 = \"192.0.2.12\"", 1)
	}
	s = strings.Replace(s, "\n\n[[cluster.member]]", `
backend = "etcd"
[cluster.etcd]
endpoints = ["`+strings.Join(endpoints, `", "`)+`"]
prefix = "/test/vipd/"
lease_ttl = "2s"
dial_timeout = "2s"
request_timeout = "1s"

[[cluster.member]]
name = "n2"
underlay_v4 = "192.0.2.12"
state_url = "http://127.0.0.1:`+strconv.Itoa(ports["n2"])+`/state"
[[cluster.member]]
name = "n3"
underlay_v4 = "192.0.2.13"
state_url = "http://127.0.0.1:1/state"

[[cluster.member]]`, 1)
	return strings.Replace(s, `table_grace = "200ms"`, `table_grace = "3s"`, 1)
}

// Issue 12, items 2 and 5: two daemons on fakes share a real etcd (three
// members in namespaces). A third member's change reaches both as one
// update at one etcd revision: both switch their tables at that revision
// (TablesAt) to the same table (equal digests), and neither reports the
// other as differing.
func TestEtcdDaemonsSwitchAtOneRevision(t *testing.T) {
	c := etcdtest.Start(t, 3, etcdtest.Options{})
	c.WaitReady(20 * time.Second)

	// n3, a member without a daemon: the etcd backend with its own key.
	keys, err := cluster.NewKeyring(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	n3, err := etcd.New(hclog.NewNullLogger(), etcd.Config{Self: "n3", Members: []string{"n1", "n2", "n3"},
		Endpoints: c.Endpoints(), Prefix: "/test/vipd/", LeaseTTL: 2 * time.Second, Keys: keys,
		Verifier: cluster.NewVerifier(keys, cluster.VerifierOptions{}), Dialer: c.Dial}, func(cluster.Update) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = n3.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	r1, r2 := newIdleRig(t), newIdleRig(t)
	ports := map[string]int{"n1": r1.port, "n2": r2.port}
	r1.edit = func(string) string { return etcdNodeConfig(r1.dir, "n1", ports, c.Endpoints()) }
	r2.edit = func(string) string { return etcdNodeConfig(r2.dir, "n2", ports, c.Endpoints()) }
	digests := cluster.ComputeDigests(clusterSpec(r1.write(vipA)))
	gen := uint64(time.Now().UnixMicro())
	publish3 := func(state cluster.ServeState) {
		gen++
		n3.Publish(cluster.NodeState{Node: "n3", Generation: gen, Digests: digests.Clone(),
			VIPs: map[netip.Addr]cluster.VIPState{vipA.Addr(): {State: state, Healthy: true}}})
	}
	publish3(cluster.StateActive)
	for _, r := range []*rig{r1, r2} {
		r.startNode(Options{EtcdDialer: c.Dial}, vipA)
	}
	r1.waitAnnounced(vipA)
	r2.waitAnnounced(vipA)

	primaries := func(r *rig) string {
		var out []string
		for _, b := range r.vipStatus(r.status(), vipA).Backends {
			out = append(out, b.Name+":"+b.Role)
		}
		return strings.Join(out, " ")
	}
	// agree waits until both daemons program want and publish their tables
	// with equal digests and, unless after is negative, at one revision
	// past after, and returns that revision. (At bring-up each daemon's
	// last switch is its own state going active, which it applies at once,
	// not at the revision of its own document: only a third member's
	// change is one revision for both.)
	agree := func(want string, after int64) int64 {
		t.Helper()
		var at int64
		deadline := time.Now().Add(15 * time.Second)
		for {
			s1, s2 := r1.status(), r2.status()
			d1, d2 := s1.Cluster.Digests, s2.Cluster.Digests
			if primaries(r1) == want && primaries(r2) == want && d1 != nil && d2 != nil &&
				(after < 0 || d1.TablesAt == d2.TablesAt && d1.TablesAt > after) && d1.Tables[vipA.Addr()] != "" &&
				d1.Tables[vipA.Addr()] == d2.Tables[vipA.Addr()] && d1.Config == d2.Config {
				at = d1.TablesAt
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the daemons did not switch to %q at one revision: n1 %q %+v, n2 %q %+v",
					want, primaries(r1), d1, primaries(r2), d2)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return at
	}
	rev := agree("n1:primary n2:primary n3:primary", -1)

	// n3 drains: one update, one revision, one switch on both.
	publish3(cluster.StateDraining)
	next := agree("n1:primary n2:primary n3:secondary", rev)
	t.Logf("both switched at revision %d, then %d", rev, next)

	for _, r := range []*rig{r1, r2} {
		st := r.status()
		if st.Cluster.Backend != "etcd" || !st.Cluster.Connected || st.Cluster.Frozen || st.Cluster.Revision < next {
			t.Errorf("backend status %+v", st.Cluster)
		}
		for _, m := range st.Members {
			if !m.Up || m.Signature != "ok" || len(m.Differs) > 0 {
				t.Errorf("member %s as seen by %s: up %v, signature %q, differs %v", m.Name, st.Node, m.Up, m.Signature, m.Differs)
			}
		}
		if !hasMember(st.Members, "n3") {
			t.Errorf("%s does not list n3", st.Node)
		}
	}
}

func hasMember(ms []api.Member, name string) bool {
	for _, m := range ms {
		if m.Name == name {
			return true
		}
	}
	return false
}
