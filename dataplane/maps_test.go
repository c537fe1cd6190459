//go:build linux

package dataplane

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/vipd/vipd/vip"
)

// TestMapsContent reads back what Program, SetBound and Unprogram wrote:
// the kernel table is BuildTable's output in backend slots, backends carry
// their address and local flag, the VIP filter has exactly the programmed
// VIPs' bits (as the program computes them), and the bound set is exact.
func TestMapsContent(t *testing.T) {
	ctx := context.Background()
	r := newDPRig(t)
	d := r.open(t, r.options())

	p := vipProgram(testVIP4, "a", "b", "c")
	p.Backends[1].Local = true
	p.Backends[2].Role = vip.RoleSecondary
	if err := d.Program(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := d.Program(ctx, vipProgram(testVIP6, "a", "b")); err != nil {
		t.Fatal(err)
	}

	// Table rows, by backend address: the shared table of its backends.
	want, err := BuildSharedTable(d.opts.Seed, p.Backends)
	if err != nil {
		t.Fatal(err)
	}
	tid := d.addrs[testVIP4].vip.tables[0].id
	var inner *ebpf.Map
	if err := d.objs.Tables.Lookup(tid, &inner); err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	backendOf := func(slot uint32) vip.Backend {
		var b vipdBackend
		if err := d.objs.Backends.Lookup(slot, &b); err != nil {
			t.Fatalf("backend slot %d: %v", slot, err)
		}
		a, ok := addrFromBytes(b.Addr, b.Family)
		if !ok {
			t.Fatalf("backend slot %d is empty", slot)
		}
		return vip.Backend{Addr: a, Local: b.Flags&backendLocal != 0}
	}
	strip := func(b vip.Backend) vip.Backend { return vip.Backend{Addr: b.Addr, Local: b.Local} }
	for _, i := range []uint32{0, 1, 2, 12345, TableRows - 1} {
		var pair vipdRowPair
		if err := inner.Lookup(i/2, &pair); err != nil {
			t.Fatal(err)
		}
		row := pair.R[i%2]
		got := [2]vip.Backend{backendOf(uint32(row.Primary)), backendOf(uint32(row.Secondary))}
		wantRow := [2]vip.Backend{strip(p.Backends[want[i].Primary]), strip(p.Backends[want[i].Secondary])}
		if diff := cmp.Diff(wantRow, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("row %d (-want +got):\n%s", i, diff)
		}
	}

	// VIP filter: the programmed VIPs' bits, computed like the program
	// does (vipFilterBit mirrors maybe_vip in bpf/vipd.c).
	filterWords := func() map[uint32]uint64 {
		out := map[uint32]uint64{}
		for i := uint32(0); i < vipFilterWords; i++ {
			var w uint64
			if err := d.objs.VipFilter.Lookup(i, &w); err != nil {
				t.Fatal(err)
			}
			if w != 0 {
				out[i] = w
			}
		}
		return out
	}
	wantFilter := map[uint32]uint64{}
	for _, a := range []netip.Addr{testVIP4, testVIP6} {
		// tcp/80 and udp/*: both bits (VF_PORTS, VF_ANY_PORT).
		w, b := vipFilterBit(a)
		wantFilter[w] |= 3 << b
	}
	if diff := cmp.Diff(wantFilter, filterWords()); diff != "" {
		t.Errorf("vip filter (-want +got):\n%s", diff)
	}
	var cfg vipdDpConfig
	if err := d.objs.Config.Lookup(uint32(0), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Flags&dpFlagVIPFilter == 0 || cfg.Addr4 != d.opts.Local4.As4() {
		t.Errorf("config %+v: want the filter flag and Local4 %s", cfg, d.opts.Local4)
	}

	// Bound set: the vip_addrs entries with ADDR_BOUND.
	bound := func() []netip.Addr {
		var (
			k   vipdAddrKey
			v   vipdAddrInfo
			out []netip.Addr
		)
		it := d.objs.VipAddrs.Iterate()
		for it.Next(&k, &v) {
			if v.Flags&addrBound == 0 {
				continue
			}
			a, _ := addrFromBytes(k.Addr, k.Family)
			out = append(out, a)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(out, netip.Addr.Compare)
		return out
	}
	other := netip.MustParseAddr("203.0.113.9")
	for _, set := range [][]netip.Addr{{testVIP4, other}, {testVIP6, other}, {testVIP6, other}, nil} {
		if err := d.SetBound(ctx, set); err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(set)
		slices.SortFunc(want, netip.Addr.Compare)
		if diff := cmp.Diff(want, bound(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("bound after SetBound(%v) (-want +got):\n%s", set, diff)
		}
	}

	// Unprogram clears the VIP's entries, table, filter bit and slots.
	if err := d.Unprogram(ctx, testVIP4); err != nil {
		t.Fatal(err)
	}
	w, b := vipFilterBit(testVIP6)
	if diff := cmp.Diff(map[uint32]uint64{w: 3 << b}, filterWords()); diff != "" {
		t.Errorf("vip filter after Unprogram (-want +got):\n%s", diff)
	}
	// A VIP left with port-specific services only: VF_PORTS alone.
	portOnly := vipProgram(testVIP6, "a", "b")
	portOnly.Services = portOnly.Services[:1]
	if err := d.Program(ctx, portOnly); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[uint32]uint64{w: 1 << b}, filterWords()); diff != "" {
		t.Errorf("vip filter with tcp/80 only (-want +got):\n%s", diff)
	}
	var gone *ebpf.Map
	if err := d.objs.Tables.Lookup(tid, &gone); err == nil {
		gone.Close()
		t.Errorf("table %d still set after Unprogram", tid)
	}
	for _, k := range vipKeys(testVIP4, p.Services) {
		var info vipdVipInfo
		m, key := d.entry(k)
		if err := m.Lookup(key, &info); err == nil {
			t.Errorf("vips entry %+v still there after Unprogram", k)
		}
	}
	// testVIP6's two backends share no slot with testVIP4's (other
	// families): only they remain.
	if got := d.slots.inUse(); got != 2 {
		t.Errorf("slots in use after Unprogram = %d, want 2", got)
	}
}
