//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/vipd/vipd/vip"
)

// tablesInKernel counts the slots of `tables` that hold a table.
func tablesInKernel(t *testing.T, d *Dataplane) int {
	t.Helper()
	n := 0
	for id := range uint32(MaxTables) {
		var inner *ebpf.Map
		if err := d.objs.Tables.Lookup(id, &inner); err == nil {
			inner.Close()
			n++
		}
	}
	return n
}

func tableOf(t *testing.T, d *Dataplane, addr netip.Addr) uint32 {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.addrs[addr]
	if a == nil || a.vip == nil || len(a.vip.tables) != 1 {
		t.Fatalf("%s is not programmed with one table", addr)
	}
	return a.vip.tables[0].id
}

// TestSharedTables: VIPs with the same backends and roles share one stored
// table; a VIP whose backends change moves to the table of its new ones
// and the old one is removed with its last VIP; an upgrade restart adopts a
// shared table and the next Programs move to keyed tables again.
func TestSharedTables(t *testing.T) {
	ctx := context.Background()
	r := newDPRig(t)
	d := r.open(t, r.options())
	a, b, c := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")
	for _, addr := range []netip.Addr{a, b, c} {
		if err := d.Program(ctx, vipProgram(addr, "n1", "n2", "n3")); err != nil {
			t.Fatal(err)
		}
	}
	mem := func() Memory {
		t.Helper()
		m, err := d.Memory()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if ta, tb, tc := tableOf(t, d, a), tableOf(t, d, b), tableOf(t, d, c); ta != tb || tb != tc {
		t.Errorf("same backends, tables %d %d %d: want one shared", ta, tb, tc)
	}
	if m := mem(); m.Tables != 1 || tablesInKernel(t, d) != 1 || m.VIPs != 3 || m.Backends != 3 || m.VIPKeys != 3*4 {
		t.Errorf("memory %+v, %d tables in the kernel: want 1 table, 3 VIPs, 3 backends, 12 vips entries", m, tablesInKernel(t, d))
	}
	// A drains: its roles differ, so does its table.
	drained := vipProgram(a, "n1", "n2", "n3")
	drained.Backends[0].Role = vip.RoleSecondary
	if err := d.Program(ctx, drained); err != nil {
		t.Fatal(err)
	}
	if tableOf(t, d, a) == tableOf(t, d, b) || tablesInKernel(t, d) != 2 {
		t.Errorf("a drained member did not give a its own table (%d tables)", tablesInKernel(t, d))
	}
	// B and C follow: the first table loses its last VIP and goes.
	first := tableOf(t, d, b)
	for _, addr := range []netip.Addr{b, c} {
		p := vipProgram(addr, "n1", "n2", "n3")
		p.Backends[0].Role = vip.RoleSecondary
		if err := d.Program(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if tableOf(t, d, b) != tableOf(t, d, a) || tableOf(t, d, c) != tableOf(t, d, a) || tablesInKernel(t, d) != 1 {
		t.Errorf("after all three drained: tables a=%d b=%d c=%d, %d in the kernel; want one", tableOf(t, d, a),
			tableOf(t, d, b), tableOf(t, d, c), tablesInKernel(t, d))
	}
	var gone *ebpf.Map
	if err := d.objs.Tables.Lookup(first, &gone); err == nil {
		gone.Close()
		if first != tableOf(t, d, a) {
			t.Errorf("table %d still installed with no VIP", first)
		}
	}

	// Upgrade restart: the shared table is adopted, not rebuilt.
	shared := dpTableID(t, d, a)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = r.open(t, r.options())
	for _, addr := range []netip.Addr{a, b, c} {
		if got := dpTableID(t, d, addr); got != shared {
			t.Errorf("%s after restart: table map %d, want the adopted %d", addr, got, shared)
		}
	}
	if m := mem(); m.Tables != 1 || m.VIPs != 3 {
		t.Errorf("after restart: %+v, want 1 table, 3 VIPs", m)
	}
	for _, addr := range []netip.Addr{a, b, c} {
		p := vipProgram(addr, "n1", "n2", "n3")
		p.Backends[0].Role = vip.RoleSecondary
		if err := d.Program(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if m := mem(); m.Tables != 1 || tablesInKernel(t, d) != 1 || m.Backends != 3 {
		t.Errorf("after reprogramming the adopted VIPs: %+v, %d in the kernel; want 1 table, 3 backends", m, tablesInKernel(t, d))
	}
	for _, addr := range []netip.Addr{a, b, c} {
		if err := d.Unprogram(ctx, addr); err != nil {
			t.Fatal(err)
		}
	}
	if m := mem(); m.Tables != 0 || m.VIPs != 0 || m.Backends != 0 || m.VIPKeys != 0 || tablesInKernel(t, d) != 0 {
		t.Errorf("after unprogramming everything: %+v, %d tables in the kernel", m, tablesInKernel(t, d))
	}
}

// TestScaleVIPs programs MaxVIPs VIPs (sharing one table, as VIPs of a
// symmetric cluster do) and checks the next one is refused by name, then
// reports the dataplane's memory.
func TestScaleVIPs(t *testing.T) {
	if testing.Short() {
		t.Skip("programs 16,384 VIPs")
	}
	ctx := context.Background()
	r := newDPRig(t)
	d := r.open(t, r.options())
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}) }
	for i := range MaxVIPs {
		if err := d.Program(ctx, vipProgram(addr(i), "n1", "n2", "n3")); err != nil {
			t.Fatalf("VIP %d: %v", i, err)
		}
	}
	err := d.Program(ctx, vipProgram(addr(MaxVIPs), "n1", "n2", "n3"))
	if !errors.Is(err, ErrTooManyVIPs) {
		t.Errorf("VIP %d: %v, want %v", MaxVIPs+1, err, ErrTooManyVIPs)
	}
	if err := d.SetBound(ctx, []netip.Addr{addr(MaxVIPs)}); !errors.Is(err, ErrTooManyVIPs) {
		t.Errorf("binding a VIP %d: %v, want %v", MaxVIPs+1, err, ErrTooManyVIPs)
	}
	m, err := d.Memory()
	if err != nil {
		t.Fatal(err)
	}
	if m.VIPs != MaxVIPs || m.Tables != 1 || m.VIPKeys != 4*MaxVIPs {
		t.Errorf("memory %+v: want %d VIPs, 1 table, %d vips entries", m, MaxVIPs, 4*MaxVIPs)
	}
	t.Logf("%d VIPs, %d table: %.1f MiB of maps (tables %.2f MiB)", m.VIPs, m.Tables, float64(m.Total)/(1<<20), float64(m.TableBytes)/(1<<20))
	for _, mm := range m.Maps {
		t.Logf("  %-10s max %6d  %8.2f MiB", mm.Name, mm.MaxEntries, float64(mm.Bytes)/(1<<20))
	}
}

// TestVIPStats: the per-VIP counters the program writes per CPU are summed
// per VIP; an index that is freed and reused starts from zero.
func TestVIPStats(t *testing.T) {
	ctx := context.Background()
	r := newDPRig(t)
	d := r.open(t, r.options())
	v := netip.MustParseAddr("198.51.100.7")
	if err := d.SetBound(ctx, []netip.Addr{v}); err != nil {
		t.Fatal(err)
	}
	if err := d.Program(ctx, vipProgram(v, "n1", "n2")); err != nil {
		t.Fatal(err)
	}
	idx := d.addrs[v].idx
	perCPU := make([]vipdVipCounters, len(d.zeroCounters))
	for cpu := range perCPU {
		for i := range perCPU[cpu].C {
			perCPU[cpu].C[i].Packets = uint64(10*i + cpu + 1)
			perCPU[cpu].C[i].Bytes = uint64(1000*i + 100*cpu + 60)
		}
	}
	must(t, d.objs.VipStats.Put(idx, perCPU))
	got, err := d.VIPStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(i int) Counter {
		var c Counter
		for cpu := range perCPU {
			c.Packets += perCPU[cpu].C[i].Packets
			c.Bytes += perCPU[cpu].C[i].Bytes
		}
		return c
	}
	want := map[netip.Addr]VIPCounters{v: {Encapsulated: sum(0), Local: sum(1), SecondChance: sum(2), LoopGuard: sum(3)}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("VIPStats (-want +got):\n%s", diff)
	}
	// Gone and back: a fresh start.
	if err := d.Unprogram(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := d.SetBound(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Program(ctx, vipProgram(v, "n1", "n2")); err != nil {
		t.Fatal(err)
	}
	if got, err = d.VIPStats(ctx); err != nil || got[v] != (VIPCounters{}) {
		t.Errorf("VIPStats after the VIP came back: %v, %v; want zeros", got, err)
	}
}

// TestSetTrust: the members and director prefixes in the maps, the trust
// flags in the config, declaratively.
func TestSetTrust(t *testing.T) {
	ctx := context.Background()
	r := newDPRig(t)
	opts := r.options()
	opts.Trust = Trust{Members: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}}
	d := r.open(t, opts)
	read := func() (members []string, dirs []string, flags uint16) {
		t.Helper()
		var (
			pk vipdPrefixKey
			v  uint8
		)
		have, err := d.members()
		if err != nil {
			t.Fatal(err)
		}
		for a := range have {
			members = append(members, a.String())
		}
		pit := d.objs.Directors.Iterate()
		for pit.Next(&pk, &v) {
			dirs = append(dirs, fmt.Sprintf("%s/%d", netip.AddrFrom16(pk.Addr), pk.Prefixlen))
		}
		var cfg vipdDpConfig
		must(t, d.objs.Config.Lookup(uint32(0), &cfg))
		slices.Sort(members)
		slices.Sort(dirs)
		return members, dirs, cfg.Flags
	}
	check := func(name string, wantM, wantD []string, wantFlags uint16) {
		t.Helper()
		m, ds, fl := read()
		if diff := cmp.Diff([]any{wantM, wantD, wantFlags}, []any{m, ds, fl}); diff != "" {
			t.Errorf("%s: members, directors, flags (-want +got):\n%s", name, diff)
		}
	}
	check("from Options", []string{"10.0.0.1", "10.0.0.2"}, nil, dpFlagVIPFilter|dpFlagGUETrust)
	trust := Trust{
		Members:   []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("::ffff:10.0.0.3")},
		Directors: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/24"), netip.MustParsePrefix("2001:db8:d::/48")},
	}
	for range 2 { // twice: nothing changes the second time
		if err := d.SetTrust(ctx, trust); err != nil {
			t.Fatal(err)
		}
		check("set", []string{"10.0.0.2", "10.0.0.3", "2001:db8::2"}, []string{"2001:db8:d::/48", "::ffff:192.0.2.0/120"},
			dpFlagVIPFilter|dpFlagGUETrust|dpFlagDirectors)
	}
	if err := d.SetTrust(ctx, Trust{}); err != nil {
		t.Fatal(err)
	}
	check("none: boundary off", nil, nil, dpFlagVIPFilter)
	if err := d.SetTrust(ctx, Trust{Members: []netip.Addr{{}}}); err == nil {
		t.Error("SetTrust with an invalid member: no error")
	}
}

// TestReadPinned: what ReadPinned reads from the pins is what Program and
// SetBound wrote: the VIPs and services, one table shared by the VIPs with
// the same backends and equal to BuildSharedTable, the bound set.
func TestReadPinned(t *testing.T) {
	ctx := context.Background()
	r := newDPRig(t)
	d := r.open(t, r.options())
	a, b, c := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8::9")
	pa, pb, pc := vipProgram(a, "n1", "n2"), vipProgram(b, "n1", "n2"), vipProgram(c, "n1", "n2", "n3")
	pc.Backends[2].Local = true
	for _, p := range []vip.ProgramSpec{pa, pb, pc} {
		if err := d.Program(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetBound(ctx, []netip.Addr{b, netip.MustParseAddr("203.0.113.1")}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPinned(r.pinPath)
	if err != nil {
		t.Fatal(err)
	}
	addrCmp := cmp.Comparer(func(x, y netip.Addr) bool { return x == y })
	var vips []netip.Addr
	for _, v := range got.VIPs {
		vips = append(vips, v.Addr)
		if diff := cmp.Diff(pa.Services, v.Services); diff != "" || !v.HasTable {
			t.Errorf("%s: services (-want +got):\n%s, has table %v", v.Addr, diff, v.HasTable)
		}
	}
	if diff := cmp.Diff([]netip.Addr{a, b, c}, vips, addrCmp); diff != "" {
		t.Errorf("VIPs (-want +got):\n%s", diff)
	}
	if got.VIPs[0].Table != got.VIPs[1].Table || got.VIPs[0].Table == got.VIPs[2].Table || len(got.Tables) != 2 {
		t.Errorf("tables %d %d %d (%d read): want a and b sharing one, c its own", got.VIPs[0].Table, got.VIPs[1].Table,
			got.VIPs[2].Table, len(got.Tables))
	}
	for _, x := range []struct {
		v PinnedVIP
		p vip.ProgramSpec
	}{{got.VIPs[0], pa}, {got.VIPs[2], pc}} {
		want, err := BuildSharedTable(d.opts.Seed, x.p.Backends)
		if err != nil {
			t.Fatal(err)
		}
		rows := got.Tables[x.v.Table]
		for i := range want {
			wp, ws := x.p.Backends[want[i].Primary], x.p.Backends[want[i].Secondary]
			gp, gs := got.Backends[rows[i].Primary], got.Backends[rows[i].Secondary]
			if gp.Addr != wp.Addr || gp.Local != wp.Local || gs.Addr != ws.Addr || gs.Local != ws.Local {
				t.Fatalf("%s row %d: %+v %+v, want %s %s", x.v.Addr, i, gp, gs, wp.Addr, ws.Addr)
			}
		}
	}
	if diff := cmp.Diff([]netip.Addr{b, netip.MustParseAddr("203.0.113.1")}, got.Bound, addrCmp); diff != "" {
		t.Errorf("bound (-want +got):\n%s", diff)
	}
}
