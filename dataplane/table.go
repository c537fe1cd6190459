package dataplane

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/vipd/vipd/vip"
)

// TableRows is the number of rows in every VIP's forwarding table. The XDP
// program indexes a table with the low 16 bits of the flow hash.
const TableRows = 65536

// Row is one forwarding-table row: the first hop for new flows and the second
// hop that gets packets of flows the first hop has no socket for (second
// chance). BuildTable returns indexes into the backends it was given; the
// loader translates them to indexes of the global backends map.
type Row struct {
	Primary   uint32
	Secondary uint32
}

// Table errors.
var (
	// ErrNoBackend: a table needs at least one backend.
	ErrNoBackend = errors.New("no backend")
	// ErrDuplicateBackend: two backends share a name, so rendezvous scores
	// (seeded by the name) would tie on every row.
	ErrDuplicateBackend = errors.New("duplicate backend name")
)

// BuildTable computes the forwarding table of the VIP addr by rendezvous
// (highest random weight) hashing: every row scores each backend with a
// 64-bit hash of (seed, addr, backend name, row). The primary is the best
// RolePrimary backend; the secondary is the best other backend of any role,
// so a draining (RoleSecondary) backend only ever appears as second hop. With
// one backend, secondary = primary. If no backend is RolePrimary, the best
// backend of any role is primary: such a VIP is not advertised (invariant 1),
// and the traffic still arriving during the withdrawal keeps reaching the
// draining nodes that hold its flows.
//
// Weights (vip.Backend.Weight) make it weighted rendezvous hashing: the
// 64-bit hash gives u in (0,1) and the backend's score is w / -ln(u), so a
// backend is best in a share of the rows equal to its weight's share (of
// the backends competing for them). With all weights equal the table is
// the unweighted one, bit for bit: the build then compares the hashes
// themselves. The logarithm is computed here in plain IEEE operations, each
// rounded explicitly (no fused multiply-add, no assembly), so that it gives
// the same bits on every machine.
//
// The result depends only on the inputs, never on their order or on the
// machine, so every director builds the same table. Removing one of N
// backends changes the primary of the rows it held and no other; changing
// one backend's weight moves rows only to it (a raise) or from it (a cut).
func BuildTable(seed uint64, addr netip.Addr, backends []vip.Backend) ([]Row, error) {
	rows := make([]Row, TableRows)
	if err := buildTableInto(rows, seed, addr, backends); err != nil {
		return nil, err
	}
	return rows, nil
}

// sharedTableAddr stands for "every VIP" in the score of a shared table.
var sharedTableAddr = netip.IPv6Unspecified()

// BuildSharedTable is the table the dataplane stores for every VIP with
// these backends and roles: BuildTable with the VIP left out of the score
// (the unspecified address in its place). VIPs share it: the flow hash of
// the XDP program includes the VIP address, so the flows of different VIPs
// still spread over the rows independently. Every director with the same
// view builds the same table.
func BuildSharedTable(seed uint64, backends []vip.Backend) ([]Row, error) {
	return BuildTable(seed, sharedTableAddr, backends)
}

func buildTableInto(rows []Row, seed uint64, addr netip.Addr, backends []vip.Backend) error {
	n := len(backends)
	if n == 0 {
		return ErrNoBackend
	}
	// Work in name order so ties (practically impossible with 64-bit
	// scores) break the same way everywhere, whatever the input order.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return strings.Compare(backends[a].Name, backends[b].Name)
	})
	keys := make([]uint64, n)
	primary := make([]bool, n)
	weights := make([]float64, n)
	weighted := false
	anyPrimary := false
	a16 := addr.As16()
	for i, bi := range order {
		b := backends[bi]
		if i > 0 && backends[order[i-1]].Name == b.Name {
			return fmt.Errorf("%w: %q", ErrDuplicateBackend, b.Name)
		}
		keys[i] = backendKey(seed, a16, b.Name)
		primary[i] = b.Role == vip.RolePrimary
		anyPrimary = anyPrimary || primary[i]
		weights[i] = float64(b.EffectiveWeight())
		weighted = weighted || weights[i] != weights[0]
	}
	if !anyPrimary {
		for i := range primary {
			primary[i] = true
		}
	}
	// Rows are independent: split them over the CPUs. A node failure
	// reprograms every VIP, so table time is failover time.
	rowSeed := mix64(seed ^ 0x5851f42d4c957f2d)
	score := func(lo, hi int) {
		if weighted {
			scoreRowsWeighted(rows, lo, hi, rowSeed, keys, weights, primary, order)
		} else {
			scoreRows(rows, lo, hi, rowSeed, keys, primary, order)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(rows)/minRowsPerWorker)
	if workers <= 1 {
		score(0, len(rows))
		return nil
	}
	var wg sync.WaitGroup
	per := (len(rows) + workers - 1) / workers
	for lo := 0; lo < len(rows); lo += per {
		hi := min(lo+per, len(rows))
		wg.Go(func() { score(lo, hi) })
	}
	wg.Wait()
	return nil
}

// minRowsPerWorker keeps goroutine overhead small against the work.
const minRowsPerWorker = 8192

// scoreRows fills rows[lo:hi]; keys, primary and order are in name order.
func scoreRows(rows []Row, lo, hi int, rowSeed uint64, keys []uint64, primary []bool, order []int) {
	for r := lo; r < hi; r++ {
		rh := mix64(rowSeed + uint64(r)*0x9e3779b97f4a7c15)
		// best1/best2: the two best of all backends; bestP: the best
		// primary-role backend. Strict > keeps the lower name on a tie.
		best1, best2, bestP := -1, -1, -1
		var s1, s2, sP uint64
		for i, k := range keys {
			s := mix64(k ^ rh)
			if primary[i] && (bestP < 0 || s > sP) {
				bestP, sP = i, s
			}
			switch {
			case best1 < 0 || s > s1:
				best2, s2 = best1, s1
				best1, s1 = i, s
			case best2 < 0 || s > s2:
				best2, s2 = i, s
			}
		}
		sec := best1
		if sec == bestP {
			sec = best2
		}
		if sec < 0 {
			sec = bestP
		}
		rows[r] = Row{Primary: uint32(order[bestP]), Secondary: uint32(order[sec])}
	}
}

// scoreRowsWeighted is scoreRows with weights: a backend's cost in a row is
// -ln(u)/w (u from its hash), and the lowest cost is the best, which is the
// highest w / -ln(u). Strict < keeps the lower name on a tie.
func scoreRowsWeighted(rows []Row, lo, hi int, rowSeed uint64, keys []uint64, weights []float64, primary []bool, order []int) {
	lowerW := make([]float64, len(weights))
	for i, w := range weights {
		lowerW[i] = (1 - 0x1p-40) / w
	}
	for r := lo; r < hi; r++ {
		rh := mix64(rowSeed + uint64(r)*0x9e3779b97f4a7c15)
		best1, best2, bestP := -1, -1, -1
		var c1, c2, cP float64
		for i, k := range keys {
			h := mix64(k ^ rh)
			// Skip the logarithm of a backend that cannot place: 1-u <=
			// -ln(u), so (1-u)/w, shrunk by far more than the rounding
			// of either side, is below its cost. Most backends of a
			// large table stop here; the result is the same as without.
			if best2 >= 0 && (!primary[i] || bestP >= 0) {
				lb := float64(1<<53-(2*(h>>12)+1)) * 0x1p-53 * lowerW[i]
				if lb >= c2 && (!primary[i] || lb >= cP) {
					continue
				}
			}
			c := negLogUnit(h) / weights[i]
			if primary[i] && (bestP < 0 || c < cP) {
				bestP, cP = i, c
			}
			switch {
			case best1 < 0 || c < c1:
				best2, c2 = best1, c1
				best1, c1 = i, c
			case best2 < 0 || c < c2:
				best2, c2 = i, c
			}
		}
		sec := best1
		if sec == bestP {
			sec = best2
		}
		if sec < 0 {
			sec = bestP
		}
		rows[r] = Row{Primary: uint32(order[bestP]), Secondary: uint32(order[sec])}
	}
}

// negLogUnit maps a 64-bit hash h to -ln(u), u = (2*(h>>12)+1) / 2^53 in
// (0,1) (exact in a float64), the exponential variate of weighted
// rendezvous. It uses only IEEE-rounded +, -, *, / and exact exponent
// manipulation, every product converted explicitly so the compiler cannot
// fuse it into a multiply-add: the same bits on every architecture, which
// math.Log (assembly on some) does not promise. Accuracy is a few ulps,
// far more than the table needs; determinism is what matters.
func negLogUnit(h uint64) float64 {
	// u = x / 2^53 = m * 2^e with m in [0.5, 1), taken apart exactly
	// with bit operations (math.Frexp does the same, slower).
	x := 2*(h>>12) + 1
	n := bits.Len64(x) // x in [2^(n-1), 2^n)
	m := math.Float64frombits(0x3fe0000000000000 | (x<<(53-n))&(1<<52-1))
	e := n - 53
	if m < math.Sqrt2/2 {
		m, e = m*2, e-1 // m in [0.707, 1.414): exact
	}
	// ln(m) = 2 atanh(t), t = (m-1)/(m+1), |t| <= 0.172: the odd series
	// 2(t + t^3/3 + ...) converges to 1e-17 by t^21.
	t := (m - 1) / (m + 1)
	t2 := float64(t * t)
	p := 1.0 / 21
	for _, c := range [...]float64{1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1} {
		p = float64(p*t2) + c
	}
	lnm := float64(2 * float64(t*p))
	return -(float64(float64(e)*math.Ln2) + lnm)
}

// backendKey hashes (seed, VIP, backend name) into the per-backend part of
// the score: FNV-1a over the bytes, finished by a strong 64-bit mix.
func backendKey(seed uint64, a16 [16]byte, name string) uint64 {
	const prime = 0x100000001b3
	h := uint64(0xcbf29ce484222325) ^ seed
	for _, c := range a16 {
		h = (h ^ uint64(c)) * prime
	}
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * prime
	}
	return mix64(h ^ uint64(len(name)))
}

// mix64 is the splitmix64 / murmur3 finalizer: a bijective 64-bit mix whose
// every output bit depends on every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
