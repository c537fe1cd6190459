package dataplane

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vipd/vipd/vip"
)

// weightedBackends are n backends with random weights 1..400 from seed.
func weightedBackends(n int, seed uint64) []vip.Backend {
	rng := rand.New(rand.NewPCG(seed, 0x77))
	bs := testBackends(n)
	for i := range bs {
		bs[i].Weight = uint32(1 + rng.IntN(400))
	}
	return bs
}

func primaryCounts(rows []Row, n int) []int {
	counts := make([]int, n)
	for _, r := range rows {
		counts[r.Primary]++
	}
	return counts
}

// TestTableWeightedShares checks each backend's share of the rows against
// its share of the weights for N = 2..64, random weights 1..400, fixed
// seeds: within 1 percentage point. Run with -v for the worst per N.
func TestTableWeightedShares(t *testing.T) {
	for n := 2; n <= 64; n++ {
		bs := weightedBackends(n, uint64(n))
		rows := mustBuild(t, 0x1234, testVIP, bs)
		total := 0.0
		for _, b := range bs {
			total += float64(b.Weight)
		}
		worst, who := 0.0, ""
		for i, c := range primaryCounts(rows, n) {
			got, want := float64(c)/TableRows, float64(bs[i].Weight)/total
			if d := math.Abs(got - want); d > worst {
				worst, who = d, fmt.Sprintf("%s weight %d: %.3f%% of rows, %.3f%% of weight", bs[i].Name, bs[i].Weight, 100*got, 100*want)
			}
		}
		t.Logf("N=%2d worst |rows - weight| %.3f pp (%s)", n, 100*worst, who)
		if worst > 0.01 {
			t.Errorf("N=%d: %s: more than 1 percentage point apart", n, who)
		}
	}
}

// TestTableEqualWeightsUnweighted: equal weights, whatever their value,
// build the unweighted table; and the weighted scorer given equal weights
// orders backends as the unweighted one does, so the first unequal weight
// moves only the rows the weights decide (no reshuffle when leaving the
// unweighted path).
func TestTableEqualWeightsUnweighted(t *testing.T) {
	for _, n := range []int{1, 2, 7, 16, 64} {
		bs := testBackends(n)
		want := mustBuild(t, 42, testVIP, bs)
		same := slices.Clone(bs)
		for i := range same {
			same[i].Weight = 250
		}
		if diff := cmp.Diff(want, mustBuild(t, 42, testVIP, same)); diff != "" {
			t.Fatalf("N=%d: equal weights changed the table (-want +got):\n%s", n, diff)
		}
		keys := make([]uint64, n)
		weights := make([]float64, n)
		primary := make([]bool, n)
		order := make([]int, n)
		for i, b := range bs { // testBackends are in name order
			keys[i] = backendKey(42, testVIP.As16(), b.Name)
			weights[i], primary[i], order[i] = 3, true, i
		}
		got := make([]Row, TableRows)
		scoreRowsWeighted(got, 0, TableRows, mix64(42^0x5851f42d4c957f2d), keys, weights, primary, order)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("N=%d: weighted scorer with equal weights differs from the unweighted (-want +got):\n%s", n, diff)
		}
	}
}

// TestTableWeightChangeMovesOnlyItsRows: raising one backend's weight moves
// rows only to it, cutting it only from it; the others keep every row they
// do not lose to it. From equal weights (the unweighted path) and from
// random ones.
func TestTableWeightChangeMovesOnlyItsRows(t *testing.T) {
	for _, start := range []struct {
		name string
		bs   []vip.Backend
	}{{"equal", testBackends(10)}, {"random", weightedBackends(10, 99)}} {
		before := mustBuild(t, 5, testVIP, start.bs)
		for _, w := range []uint32{1, 50, 300, 10000} {
			bs := slices.Clone(start.bs)
			old := bs[3].EffectiveWeight()
			bs[3].Weight = w
			after := mustBuild(t, 5, testVIP, bs)
			moved := 0
			for i := range before {
				b, a := before[i].Primary, after[i].Primary
				if a == b {
					continue
				}
				moved++
				switch {
				case w > old && a != 3:
					t.Fatalf("%s, weight %d -> %d: row %d moved %d -> %d, not to node03", start.name, old, w, i, b, a)
				case w < old && b != 3:
					t.Fatalf("%s, weight %d -> %d: row %d moved %d -> %d, not from node03", start.name, old, w, i, b, a)
				}
				// Second chance: a raise makes the old primary the new
				// second hop (slow start only raises). A cut is, for
				// the rows it moves, like a leave.
				if w > old && after[i].Secondary != b {
					t.Fatalf("%s, weight %d -> %d: row %d: old primary %d is not the secondary of %+v", start.name, old, w, i, b, after[i])
				}
			}
			t.Logf("%s: node03 weight %d -> %d moved %d rows", start.name, old, w, moved)
		}
	}
}

// TestTableWeightedLeaverRowsMove: with weights, removing one backend moves
// only its rows.
func TestTableWeightedLeaverRowsMove(t *testing.T) {
	bs := weightedBackends(12, 7)
	all := mustBuild(t, 5, testVIP, bs)
	without := slices.Delete(slices.Clone(bs), 3, 4)
	less := mustBuild(t, 5, testVIP, without)
	for i := range all {
		before, after := bs[all[i].Primary].Name, without[less[i].Primary].Name
		if before != "node03" && before != after {
			t.Fatalf("row %d: primary %s -> %s though node03 left", i, before, after)
		}
	}
	// And a weighted table is order-independent and pinned like the
	// unweighted one: a change is a cluster-wide table change.
	rev := slices.Clone(bs)
	slices.Reverse(rev)
	if diff := cmp.Diff(names(all, bs), names(mustBuild(t, 5, testVIP, rev), rev)); diff != "" {
		t.Errorf("weighted table depends on input order (-want +got):\n%s", diff)
	}
	golden := [][2]string{names(all, bs)[0], names(all, bs)[1], names(all, bs)[65535]}
	if diff := cmp.Diff(goldenWeighted, golden); diff != "" {
		t.Errorf("golden weighted rows changed (-want +got):\n%s", diff)
	}
}

var goldenWeighted = [][2]string{{"node11", "node01"}, {"node07", "node02"}, {"node04", "node10"}}

// TestNegLogUnit checks the portable -ln(u) against math.Log and pins its
// bits: a change of them changes weighted tables cluster-wide.
func TestNegLogUnit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		h := rng.Uint64()
		if i < 64 {
			h = ^uint64(0) >> i // u near 1, then ever smaller
		}
		u := float64(2*(h>>12)+1) * 0x1p-53
		got, want := negLogUnit(h), -math.Log(u)
		if math.Abs(got-want) > 1e-15*want {
			t.Fatalf("h=%#x: -ln(%g) = %g, math.Log says %g", h, u, got, want)
		}
		if got <= 0 {
			t.Fatalf("h=%#x: -ln(%g) = %g, not positive", h, u, got)
		}
	}
	pinned := map[uint64]uint64{}
	for _, h := range []uint64{0, 1 << 40, 0x9e3779b97f4a7c15, ^uint64(0)} {
		pinned[h] = math.Float64bits(negLogUnit(h))
	}
	if diff := cmp.Diff(pinnedNegLog, pinned); diff != "" {
		t.Errorf("negLogUnit bits changed (-want +got):\n%s", diff)
	}
}

var pinnedNegLog = map[uint64]uint64{
	0:                  0x40425e4f7b2737fa,
	1 << 40:            0x4030a2b23f33ab73,
	0x9e3779b97f4a7c15: 0x3fdecc2caec5160b,
	^uint64(0):         0x3ca0000000000000,
}

// TestTableWeightedPruning: skipping the logarithm of backends that cannot
// place changes nothing: the build equals a plain weighted rendezvous
// written from its definition, with draining backends in the mix.
func TestTableWeightedPruning(t *testing.T) {
	for _, n := range []int{2, 5, 33} {
		bs := weightedBackends(n, uint64(100+n))
		for i := range bs {
			if i%3 == 1 {
				bs[i].Role = vip.RoleSecondary
			}
		}
		got := mustBuild(t, 9, testVIP, bs)
		rowSeed := mix64(9 ^ 0x5851f42d4c957f2d)
		for r := range TableRows {
			rh := mix64(rowSeed + uint64(r)*0x9e3779b97f4a7c15)
			cost := make([]float64, n)
			for i, b := range bs { // in name order already
				cost[i] = negLogUnit(mix64(backendKey(9, testVIP.As16(), b.Name)^rh)) / float64(b.Weight)
			}
			p := -1
			for i, b := range bs {
				if b.Role == vip.RolePrimary && (p < 0 || cost[i] < cost[p]) {
					p = i
				}
			}
			s := -1
			for i := range bs {
				if i != p && (s < 0 || cost[i] < cost[s]) {
					s = i
				}
			}
			if want := (Row{Primary: uint32(p), Secondary: uint32(s)}); got[r] != want {
				t.Fatalf("N=%d row %d: %+v, by definition %+v", n, r, got[r], want)
			}
		}
	}
}
