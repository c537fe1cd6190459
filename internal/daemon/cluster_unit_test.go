package daemon

import (
	"net/netip"
	"testing"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/vip"
)

// Only a change of table digests (and the generation and TablesAt that go
// with it) is rate-limited when republishing to etcd; anything a peer
// builds its tables from, or the configuration digests, goes out at once.
func TestDigestsOnly(t *testing.T) {
	a := vipA.Addr()
	doc := func(state cluster.ServeState, seed uint64, table byte, at int64, gen uint64) *cluster.NodeState {
		d := cluster.ComputeDigests(cluster.ClusterSpec{Seed: seed, VIPs: []cluster.VIPSpec{{Addr: a}}})
		if table != 0 {
			d.SetTable(a, cluster.Digest{table})
		}
		d.TablesAt = at
		return &cluster.NodeState{Node: "n1", Generation: gen, Digests: d,
			VIPs: map[netip.Addr]cluster.VIPState{a: {State: state, Healthy: true}}}
	}
	base := doc(cluster.StateActive, 1, 1, 10, 5)
	for _, tt := range []struct {
		name string
		next *cluster.NodeState
		want bool
	}{
		{"table digest and revision", doc(cluster.StateActive, 1, 2, 11, 6), true},
		{"table programmed", doc(cluster.StateActive, 1, 0, 10, 6), true},
		{"serve state", doc(cluster.StateDraining, 1, 2, 11, 6), false},
		{"configuration", doc(cluster.StateActive, 2, 1, 10, 6), false},
	} {
		if got := digestsOnly(base, tt.next); got != tt.want {
			t.Errorf("%s: digestsOnly = %v, want %v", tt.name, got, tt.want)
		}
	}
	if digestsOnly(&cluster.NodeState{Node: "n1", Generation: 1}, &cluster.NodeState{Node: "n1", Generation: 2, Weight: new(uint32)}) {
		t.Error("a weight change counted as digests only")
	}
}

// Equal weights build the unweighted table whatever their value, so they
// digest as it does; unequal weights are in the digest (equal digests,
// equal tables).
func TestTableDigestWeights(t *testing.T) {
	a := vipA.Addr()
	bs := func(w ...uint32) []vip.Backend {
		var out []vip.Backend
		for i, x := range w {
			out = append(out, vip.Backend{Name: string(rune('a' + i)), Role: vip.RolePrimary, Weight: x})
		}
		return out
	}
	plain := tableDigest(a, bs(0, 0, 0))
	if tableDigest(a, bs(250, 250, 250)) != plain || tableDigest(a, bs(100, 0, 100)) != plain {
		t.Error("equal weights digest differently from no weights")
	}
	w := tableDigest(a, bs(100, 200, 100))
	if w == plain || tableDigest(a, bs(100, 201, 100)) == w || tableDigest(a, bs(200, 100, 100)) == w {
		t.Error("a weighted table digests like another")
	}
}
