package dataplane

import (
	"errors"
	"fmt"
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
// The result depends only on the inputs, never on their order or on the
// machine, so every director builds the same table. Removing one of N
// backends changes the primary of the ~1/N rows it held and no other.
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
	}
	if !anyPrimary {
		for i := range primary {
			primary[i] = true
		}
	}
	// Rows are independent: split them over the CPUs. A node failure
	// reprograms every VIP, so table time is failover time.
	rowSeed := mix64(seed ^ 0x5851f42d4c957f2d)
	workers := min(runtime.GOMAXPROCS(0), len(rows)/minRowsPerWorker)
	if workers <= 1 {
		scoreRows(rows, 0, len(rows), rowSeed, keys, primary, order)
		return nil
	}
	var wg sync.WaitGroup
	per := (len(rows) + workers - 1) / workers
	for lo := 0; lo < len(rows); lo += per {
		hi := min(lo+per, len(rows))
		wg.Go(func() { scoreRows(rows, lo, hi, rowSeed, keys, primary, order) })
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
