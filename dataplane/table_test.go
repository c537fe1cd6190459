package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vipd/vipd/vip"
)

var testVIP = netip.MustParseAddr("198.51.100.10")

func testBackends(n int) []vip.Backend {
	bs := make([]vip.Backend, n)
	for i := range bs {
		bs[i] = vip.Backend{
			Name: fmt.Sprintf("node%02d", i),
			Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}),
		}
	}
	return bs
}

// names turns a table into backend names, so tables built from differently
// ordered inputs compare.
func names(rows []Row, bs []vip.Backend) [][2]string {
	out := make([][2]string, len(rows))
	for i, r := range rows {
		out[i] = [2]string{bs[r.Primary].Name, bs[r.Secondary].Name}
	}
	return out
}

func mustBuild(t testing.TB, seed uint64, addr netip.Addr, bs []vip.Backend) []Row {
	t.Helper()
	rows, err := BuildTable(seed, addr, bs)
	if err != nil {
		t.Fatalf("BuildTable: %v", err)
	}
	return rows
}

func TestTableDeterministic(t *testing.T) {
	bs := testBackends(7)
	want := names(mustBuild(t, 42, testVIP, bs), bs)

	// Same inputs in another order (another director's view): same table.
	rev := slices.Clone(bs)
	slices.Reverse(rev)
	if diff := cmp.Diff(want, names(mustBuild(t, 42, testVIP, rev), rev)); diff != "" {
		t.Errorf("table depends on input order (-want +got):\n%s", diff)
	}
	// Pinned rows: a change of hash is a cluster-wide table change (every
	// director must run the same version), so it must be deliberate.
	golden := [][2]string{want[0], want[1], want[65535]}
	if diff := cmp.Diff([][2]string{{"node04", "node03"}, {"node05", "node04"}, {"node03", "node00"}}, golden); diff != "" {
		t.Errorf("golden rows changed (-want +got):\n%s", diff)
	}
	// The seed and the VIP both change the table.
	for _, tc := range []struct {
		name string
		seed uint64
		addr netip.Addr
	}{
		{"seed", 43, testVIP},
		{"vip", 42, netip.MustParseAddr("198.51.100.11")},
	} {
		got := names(mustBuild(t, tc.seed, tc.addr, bs), bs)
		same := 0
		for i := range got {
			if got[i][0] == want[i][0] {
				same++
			}
		}
		// Independent tables agree on ~1/7 of the primaries.
		if same > TableRows/5 {
			t.Errorf("%s change: %d/%d primaries unchanged, want ~1/7", tc.name, same, TableRows)
		}
	}
}

func TestTableRoles(t *testing.T) {
	for _, tc := range []struct {
		name          string
		roles         []vip.BackendRole
		wantPrimaries []string // backends allowed as primary
	}{
		{"one backend", []vip.BackendRole{vip.RolePrimary}, []string{"node00"}},
		{"one draining", []vip.BackendRole{vip.RolePrimary, vip.RoleSecondary, vip.RolePrimary}, []string{"node00", "node02"}},
		{"all but one draining", []vip.BackendRole{vip.RoleSecondary, vip.RoleSecondary, vip.RolePrimary}, []string{"node02"}},
		{"all draining", []vip.BackendRole{vip.RoleSecondary, vip.RoleSecondary}, []string{"node00", "node01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := testBackends(len(tc.roles))
			for i, r := range tc.roles {
				bs[i].Role = r
			}
			rows := mustBuild(t, 7, testVIP, bs)
			asPrimary := map[string]int{}
			asSecondary := map[string]int{}
			for _, r := range rows {
				if len(bs) > 1 && r.Primary == r.Secondary {
					t.Fatalf("row %+v: secondary = primary with %d backends", r, len(bs))
				}
				asPrimary[bs[r.Primary].Name]++
				asSecondary[bs[r.Secondary].Name]++
			}
			var gotPrimaries []string
			for n := range asPrimary {
				gotPrimaries = append(gotPrimaries, n)
			}
			slices.Sort(gotPrimaries)
			if diff := cmp.Diff(tc.wantPrimaries, gotPrimaries); diff != "" {
				t.Errorf("backends used as primary (-want +got):\n%s", diff)
			}
			// Every draining backend serves as second hop somewhere: it
			// keeps its flows by second chance.
			if len(bs) > 1 {
				for _, b := range bs {
					if b.Role == vip.RoleSecondary && asSecondary[b.Name] == 0 {
						t.Errorf("%s never secondary", b.Name)
					}
				}
			}
		})
	}
}

func TestTableDrainKeepsOtherRows(t *testing.T) {
	// Draining node01 moves only the rows it was primary for, and it
	// becomes their secondary: its established flows reach it by second
	// chance.
	bs := testBackends(5)
	before := mustBuild(t, 1, testVIP, bs)
	bs[1].Role = vip.RoleSecondary
	after := mustBuild(t, 1, testVIP, bs)
	for i := range before {
		if before[i].Primary != 1 {
			if after[i].Primary != before[i].Primary {
				t.Fatalf("row %d: primary moved %d -> %d though node01 did not hold it", i, before[i].Primary, after[i].Primary)
			}
			continue
		}
		if after[i].Secondary != 1 {
			t.Fatalf("row %d: node01 held it as primary but is not its secondary after draining: %+v", i, after[i])
		}
	}
}

func TestTableErrors(t *testing.T) {
	if _, err := BuildTable(1, testVIP, nil); !errors.Is(err, ErrNoBackend) {
		t.Errorf("no backends: got %v, want ErrNoBackend", err)
	}
	bs := testBackends(3)
	bs[2].Name = bs[0].Name
	if _, err := BuildTable(1, testVIP, bs); !errors.Is(err, ErrDuplicateBackend) {
		t.Errorf("duplicate: got %v, want ErrDuplicateBackend", err)
	}
}

// tableFigures measures, for N = 2..maxN backends, balance (max rows of one
// backend as primary / mean) and disruption (fraction of rows whose primary
// changes when one of the N backends leaves; ideal 1/N, the share it held).
func tableFigures(t testing.TB, seed uint64, maxN int) (balance, disruption []float64) {
	bs := testBackends(maxN)
	balance = make([]float64, maxN+1)
	disruption = make([]float64, maxN+1)
	prev := mustBuild(t, seed, testVIP, bs[:1])
	for n := 2; n <= maxN; n++ {
		rows := mustBuild(t, seed, testVIP, bs[:n])
		counts := make([]int, n)
		changed := 0
		for i, r := range rows {
			counts[r.Primary]++
			// Indexes are stable: bs[:n-1] is a prefix of bs[:n].
			if r.Primary != prev[i].Primary {
				changed++
			}
		}
		balance[n] = float64(slices.Max(counts)) / (float64(TableRows) / float64(n))
		disruption[n] = float64(changed) / TableRows
		prev = rows
	}
	return balance, disruption
}

// TestTableReport prints balance (max/mean rows per backend) and
// disruption (rows whose primary changes when one of N backends leaves)
// against the ideal 1/N for N = 2..64, and checks both stay close:
//
//	go test -v -run TestTableReport ./dataplane/
func TestTableReport(t *testing.T) {
	const maxN = 64
	balance, disruption := tableFigures(t, 0x1234, maxN)
	t.Logf("%4s %10s %12s %10s %8s", "N", "max/mean", "disruption", "ideal 1/N", "ratio")
	for n := 2; n <= maxN; n++ {
		ideal := 1 / float64(n)
		t.Logf("%4d %10.4f %12.5f %10.5f %8.3f", n, balance[n], disruption[n], ideal, disruption[n]/ideal)
		// 65536 rows: the binomial spread stays within a few percent
		// even at N=64.
		if balance[n] > 1.15 {
			t.Errorf("N=%d: max/mean = %.3f, want <= 1.15", n, balance[n])
		}
		// Rendezvous hashing moves the leaver's rows and no others.
		if disruption[n] > ideal*1.15 {
			t.Errorf("N=%d: disruption %.4f, ideal %.4f", n, disruption[n], ideal)
		}
	}
}

func TestTableOnlyLeaverRowsMove(t *testing.T) {
	bs := testBackends(10)
	all := mustBuild(t, 5, testVIP, bs)
	without := slices.Delete(slices.Clone(bs), 3, 4) // node03 leaves
	less := mustBuild(t, 5, testVIP, without)
	for i := range all {
		before, after := bs[all[i].Primary].Name, without[less[i].Primary].Name
		if before != "node03" && before != after {
			t.Fatalf("row %d: primary %s -> %s though node03 left", i, before, after)
		}
	}
}

// BenchmarkBuildTable times one 65536-row table for N backends. It reports
// ns per (row, backend) score and, as the baseline measured in the same run,
// the ratio of the N=16 time to an N=1 table (the per-row overhead).
func BenchmarkBuildTable(b *testing.B) {
	rows := make([]Row, TableRows)
	var base float64
	for _, n := range []int{1, 2, 16, 64, -2, -16, -64} {
		// Negative: the same N with random weights (the weighted build).
		name, bs := fmt.Sprintf("N=%d", n), testBackends(max(n, 1))
		if n < 0 {
			n = -n
			name, bs = fmt.Sprintf("N=%d/weighted", n), weightedBackends(n, 1)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := buildTableInto(rows, 1, testVIP, bs); err != nil {
					b.Fatal(err)
				}
			}
			per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(per/float64(TableRows*n), "ns/score")
			if n == 1 {
				base = per
			} else if base > 0 {
				b.ReportMetric(per/base, "x-N=1")
			}
		})
	}
}
