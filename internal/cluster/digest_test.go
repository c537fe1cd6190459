package cluster

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	vipA = netip.MustParseAddr("198.51.100.10")
	vipB = netip.MustParseAddr("198.51.100.11")
	vip6 = netip.MustParseAddr("2001:db8:100::10")
)

func testSpec() ClusterSpec {
	return ClusterSpec{
		Seed:  42,
		Table: TableSpec{Rows: 65536, Algorithm: "rendezvous-v1"},
		Members: []MemberSpec{
			{Name: "n1", UnderlayV4: netip.MustParseAddr("192.0.2.1"), UnderlayV6: netip.MustParseAddr("2001:db8::1")},
			{Name: "n2", UnderlayV4: netip.MustParseAddr("192.0.2.2")},
			{Name: "n3", UnderlayV4: netip.MustParseAddr("192.0.2.3")},
		},
		VIPs: []VIPSpec{
			{Addr: vipA, Services: []Service{{6, 80}, {6, 443}}},
			{Addr: vipB, Services: []Service{{17, 53}}},
			{Addr: vip6, Services: []Service{{6, 0}}},
		},
	}
}

// The digest is what members of different vipd versions compare: its
// encoding must not change by accident. The value was computed
// independently from the encoding described in digest.go (length-prefixed
// strings, big-endian integers, family byte + 16-byte addresses, sections
// in a fixed order, SHA-256 truncated to 16 bytes).
func TestDigestGolden(t *testing.T) {
	d := ComputeDigests(testSpec())
	if got, want := d.Config.String(), "7f29fb456e9f2fc06e92fea1476d6e6d"; got != want {
		t.Errorf("config digest %s, want %s (an intended change of encoding bumps digestVersion)", got, want)
	}
}

func TestDigestOrderDoesNotMatter(t *testing.T) {
	a := ComputeDigests(testSpec())
	s := testSpec()
	slices.Reverse(s.Members)
	slices.Reverse(s.VIPs)
	s.VIPs[2].Services = []Service{{6, 443}, {6, 80}, {6, 443}} // vipA, reordered, a duplicate
	b := ComputeDigests(s)
	if !a.Equal(b) {
		t.Errorf("reordering changed the digests:\n%+v\n%+v", a, b)
	}
	if d := CompareDigests(a, b); !d.Empty() {
		t.Errorf("differences %v", d)
	}
}

func TestCompareDigests(t *testing.T) {
	tests := []struct {
		name   string
		change func(*ClusterSpec)
		want   []string
	}{
		{"same", func(*ClusterSpec) {}, nil},
		{"seed", func(s *ClusterSpec) { s.Seed = 43 }, []string{"seed"}},
		{"table rows", func(s *ClusterSpec) { s.Table.Rows = 4096 }, []string{"table"}},
		{"table algorithm", func(s *ClusterSpec) { s.Table.Algorithm = "weighted-rendezvous-v1" }, []string{"table"}},
		{"member underlay", func(s *ClusterSpec) { s.Members[1].UnderlayV4 = netip.MustParseAddr("192.0.2.22") }, []string{"members"}},
		{"member v4-mapped underlay", func(s *ClusterSpec) { s.Members[1].UnderlayV4 = netip.MustParseAddr("::ffff:192.0.2.2") }, []string{"members"}},
		{"member weight", func(s *ClusterSpec) { s.Members[2].Weight = 2 }, []string{"members"}},
		{"member missing", func(s *ClusterSpec) { s.Members = s.Members[:2] }, []string{"members"}},
		{"services", func(s *ClusterSpec) { s.VIPs[0].Services = []Service{{6, 80}} }, []string{"vips 198.51.100.10 services"}},
		{"vip absent at the member", func(s *ClusterSpec) { s.VIPs = s.VIPs[1:] }, []string{"vips 198.51.100.10 absent"}},
		{"vip only at the member", func(s *ClusterSpec) {
			s.VIPs = append(s.VIPs, VIPSpec{Addr: netip.MustParseAddr("198.51.100.99")})
		}, []string{"vips 198.51.100.99 extra"}},
		{"several", func(s *ClusterSpec) {
			s.Seed = 1
			s.VIPs[2].Services = nil
			s.VIPs[1].Services = append(s.VIPs[1].Services, Service{17, 54})
		}, []string{"seed", "vips 198.51.100.11 services", "vips 2001:db8:100::10 services"}},
	}
	local := ComputeDigests(testSpec())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSpec()
			tt.change(&s)
			remote := ComputeDigests(s)
			got := CompareDigests(local, remote)
			if d := cmp.Diff(tt.want, got.Config); d != "" {
				t.Errorf("differences (-want +got):\n%s", d)
			}
			if (len(tt.want) == 0) != (local.Config == remote.Config) {
				t.Errorf("config digest equal = %t with differences %v", local.Config == remote.Config, tt.want)
			}
		})
	}
	if got := CompareDigests(local, nil).Config; !slices.Equal(got, []string{ItemNoDigests}) {
		t.Errorf("no remote digests: %v", got)
	}
	if got := CompareDigests(nil, local); !got.Empty() {
		t.Errorf("no local digests: %v", got)
	}
}

func TestDescribeDifferences(t *testing.T) {
	s := testSpec()
	s.VIPs[0].Services = nil
	d := CompareDigests(ComputeDigests(testSpec()), ComputeDigests(s))
	if got, want := d.Describe("n2"), "member n2 differs: vips 198.51.100.10 services"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if got := (Differences{}).Describe("n2"); got != "" {
		t.Errorf("Describe of nothing = %q", got)
	}
}

// rowsOf iterates rows of [primary, secondary] pairs.
func rowsOf(rows [][2]uint32) func(func(uint32, uint32) bool) {
	return func(yield func(uint32, uint32) bool) {
		for _, r := range rows {
			if !yield(r[0], r[1]) {
				return
			}
		}
	}
}

func TestTableDigest(t *testing.T) {
	rows := make([][2]uint32, 65536)
	for i := range rows {
		rows[i] = [2]uint32{uint32(i % 3), uint32((i + 1) % 3)}
	}
	names := []string{"n1", "n2", "n3"}
	base := TableDigest(names, rowsOf(rows))

	// The same table from a director that lists its backends in another
	// order (indexes permuted accordingly).
	perm := []uint32{2, 0, 1} // old index -> new index
	permNames := make([]string, 3)
	for old, nw := range perm {
		permNames[nw] = names[old]
	}
	permRows := make([][2]uint32, len(rows))
	for i, r := range rows {
		permRows[i] = [2]uint32{perm[r[0]], perm[r[1]]}
	}
	if got := TableDigest(permNames, rowsOf(permRows)); got != base {
		t.Errorf("permuted backends: %s, want %s", got, base)
	}

	changed := slices.Clone(rows)
	changed[4711] = [2]uint32{changed[4711][1], changed[4711][0]}
	if TableDigest(names, rowsOf(changed)) == base {
		t.Error("a swapped row gives the same digest")
	}
	if TableDigest([]string{"n1", "n2", "n4"}, rowsOf(rows)) == base {
		t.Error("another backend name gives the same digest")
	}
	if TableDigest(names, rowsOf(rows[:65535])) == base {
		t.Error("a shorter table gives the same digest")
	}
	out := slices.Clone(rows)
	out[0] = [2]uint32{7, 0}
	if d := TableDigest(names, rowsOf(out)); d == base || d.IsZero() {
		t.Error("an index outside the backends was not digested apart")
	}

	// Table differences are reported only between the same view.
	local, remote := ComputeDigests(testSpec()), ComputeDigests(testSpec())
	local.SetTable(vipA, base)
	remote.SetTable(vipA, TableDigest(names, rowsOf(changed)))
	remote.SetTable(netip.MustParseAddr("203.0.113.1"), base) // not configured: ignored
	if got := CompareDigests(local, remote); !slices.Equal(got.Tables, []string{"vips 198.51.100.10 table"}) || len(got.Config) != 0 {
		t.Errorf("same view: %+v", got)
	}
	local.TablesAt, remote.TablesAt = 7, 8
	if got := CompareDigests(local, remote); !got.Empty() {
		t.Errorf("different views compared: %+v", got)
	}
	remote.TablesAt = 7
	remote.SetTable(vipA, Digest{})
	if got := CompareDigests(local, remote); !got.Empty() {
		t.Errorf("a member without a table compared: %+v", got)
	}
}

func TestDigestsInDocument(t *testing.T) {
	d := ComputeDigests(testSpec())
	d.SetTable(vipA, Digest{1, 2, 3})
	d.TablesAt = 12
	w := uint32(40)
	st := NodeState{Node: "n2", Generation: 3, VIPs: map[netip.Addr]VIPState{}, Weight: &w, Digests: d}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeNodeState(b, "n2")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&st, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	if !st.Equal(got) || !got.Equal(st.Clone()) {
		t.Error("Equal after a round trip")
	}
	c := st.Clone()
	*c.Weight = 41
	c.Digests.VIPs[vipA] = VIPDigests{}
	if *st.Weight != 40 || st.Digests.VIPs[vipA].Table.IsZero() || st.Equal(c) {
		t.Error("a clone shares its weight or digests")
	}
	for _, bad := range []string{
		`{"node":"n2","digests":{"config":"00"}}`,
		`{"node":"n2","digests":{"config":"zz4df8ef6ec5b9fd2a0d1f9b3c7de0a7"}}`,
		`{"node":"n2","digests":{"config":"0a4df8ef6ec5b9fd2a0d1f9b3c7de0a7","vips":{"fe80::1%eth0":{"services":"0a4df8ef6ec5b9fd2a0d1f9b3c7de0a7"}}}}`,
		`{"node":"n2","digests":{"config":"0a4df8ef6ec5b9fd2a0d1f9b3c7de0a7","tables_at":-1}}`,
		`{"node":"n2","weight":-1}`,
	} {
		if _, err := DecodeNodeState([]byte(bad), "n2"); !errors.Is(err, ErrBadDocument) {
			t.Errorf("DecodeNodeState(%s) = %v, want ErrBadDocument", bad, err)
		}
	}
	if s := d.Config.Short(); len(s) != 8 || !strings.HasPrefix(d.Config.String(), s) {
		t.Errorf("Short = %q", s)
	}
}

func BenchmarkTableDigest(b *testing.B) {
	rows := make([][2]uint32, 65536)
	for i := range rows {
		rows[i] = [2]uint32{uint32(i % 16), uint32((i + 7) % 16)}
	}
	names := make([]string, 16)
	for i := range names {
		names[i] = "node" + string(rune('a'+i))
	}
	b.SetBytes(int64(len(rows) * 8))
	for b.Loop() {
		TableDigest(names, rowsOf(rows))
	}
}

// BuildDigest ignores the order of the backends, and tells roles, names
// and VIPs apart.
func TestBuildDigest(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.10")
	base := BuildDigest(a, []TableBackend{{"n1", true, 0}, {"n2", true, 0}, {"n3", false, 0}})
	if got := BuildDigest(a, []TableBackend{{"n3", false, 0}, {"n1", true, 0}, {"n2", true, 0}}); got != base {
		t.Error("the order of the backends changed the digest")
	}
	for name, other := range map[string]Digest{
		"role":   BuildDigest(a, []TableBackend{{"n1", true, 0}, {"n2", true, 0}, {"n3", true, 0}}),
		"member": BuildDigest(a, []TableBackend{{"n1", true, 0}, {"n2", true, 0}}),
		"vip":    BuildDigest(netip.MustParseAddr("198.51.100.11"), []TableBackend{{"n1", true, 0}, {"n2", true, 0}, {"n3", false, 0}}),
		"weight": BuildDigest(a, []TableBackend{{"n1", true, 100}, {"n2", true, 200}, {"n3", false, 100}}),
	} {
		if other == base || other.IsZero() {
			t.Errorf("another %s, same digest", name)
		}
	}
	// Weights: equal digests, equal tables. Another weight is another
	// digest; so is another weighted member.
	w := BuildDigest(a, []TableBackend{{"n1", true, 100}, {"n2", true, 200}, {"n3", false, 100}})
	for name, other := range map[string]Digest{
		"weight":   BuildDigest(a, []TableBackend{{"n1", true, 100}, {"n2", true, 201}, {"n3", false, 100}}),
		"weighted": BuildDigest(a, []TableBackend{{"n1", true, 200}, {"n2", true, 100}, {"n3", false, 100}}),
	} {
		if other == w {
			t.Errorf("another %s, same digest", name)
		}
	}
}

// TestDigestSlowStart: slow start is in the table section, and leaves the
// digest of a cluster without it as it was.
func TestDigestSlowStart(t *testing.T) {
	spec := ClusterSpec{Seed: 1, Table: TableSpec{Rows: 65536, Algorithm: "rendezvous-v1"}}
	off := ComputeDigests(spec)
	spec.Table.SlowStart = time.Minute
	on := ComputeDigests(spec)
	if off.Sections[SectionTable] == on.Sections[SectionTable] || off.Config == on.Config {
		t.Error("slow start does not change the table digest")
	}
}
