//go:build linux

package dataplane

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestProgVIPCache: the per-CPU VIP cache answers a VIP it has seen
// without the hash maps, and forgets everything once vip_gen is bumped,
// as the loader does after every change to vips4/vips6: re-pointing a VIP
// at another table, and deleting its service, take effect on the next
// packet.
func TestProgVIPCache(t *testing.T) {
	r := newRig(t)
	frame := tcpFrame(t, 0, client4, 41000, vipTCP, 80, ack)
	// Table 20: every row to B first.
	r.addVIPTable(t, 20, func(uint32) vipdRow { return vipdRow{Primary: 2, Secondary: 1} })

	// The cache is per CPU: every packet on one CPU.
	r.onOneCPU(t, frame, func(runOut func() (uint32, []byte)) {
		run := func() (uint32, netip.Addr) {
			code, out := runOut()
			return code, txDst(code, out)
		}
		if code, dst := run(); code != xdpTX || dst != be4a {
			t.Fatalf("first packet: %s to %v, want TX to %v", verdictNames[code], dst, be4a)
		}
		// The key is re-pointed at table 20 behind the cache's back (no
		// bump): the cached answer still holds...
		must(t, r.objs.Vips4.Put(vipdVip4Key{Addr: vipTCP.As4(), Port: 80, Proto: 6}, vipdVipInfo{Table: 20, Vip: rigVIPIdx[vipTCP]}))
		if code, dst := run(); code != xdpTX || dst != be4a {
			t.Fatalf("changed without a bump: %s to %v, want the cached answer (TX to %v)", verdictNames[code], dst, be4a)
		}
		// ...until the generation moves.
		r.retireVIPCache(t)
		if code, dst := run(); code != xdpTX || dst != be4b {
			t.Fatalf("after the bump: %s to %v, want TX to %v", verdictNames[code], dst, be4b)
		}
	})

	// Deleted: passed at once (the filter bit is still set; the lookups
	// find nothing).
	must(t, r.objs.Vips4.Delete(vipdVip4Key{Addr: vipTCP.As4(), Port: 80, Proto: 6}))
	r.retireVIPCache(t)
	r.check(t, progCase{name: "deleted", in: frame, wantCode: xdpPass,
		wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_NON_VIP: 1}})
}

// TestProgVIPCacheBound: the VIP cache also answers whether a VIP is bound,
// once a packet has asked `vip_addrs` (a local primary does): a flag
// changed behind the cache's back is not seen, and is seen on the next
// packet once vip_gen is bumped, as SetBound does. Both ways: unbinding
// the local primary sends its packets to the secondary; binding it again
// passes them to the stack.
func TestProgVIPCacheBound(t *testing.T) {
	r := newRig(t)
	frame := tcpFrame(t, 0, client4, 41001, vipLocal, 80, syn)
	b, fam := addr16(vipLocal)
	key := vipdAddrKey{Addr: b, Family: fam}
	setFlag := func(bound bool) { // behind the cache's back: no bump
		info := vipdAddrInfo{Vip: rigVIPIdx[vipLocal]}
		if bound {
			info.Flags = 1
		}
		must(t, r.objs.VipAddrs.Put(key, info))
	}
	r.onOneCPU(t, frame, func(runOut func() (uint32, []byte)) {
		run := func() (uint32, netip.Addr) {
			code, out := runOut()
			return code, txDst(code, out)
		}
		if code, _ := run(); code != xdpPass {
			t.Fatalf("bound local primary: %s, want PASS", verdictNames[code])
		}
		setFlag(false)
		if code, _ := run(); code != xdpPass {
			t.Fatalf("unbound without a bump: %s, want the cached answer (PASS)", verdictNames[code])
		}
		r.retireVIPCache(t)
		if code, dst := run(); code != xdpTX || dst != be4a {
			t.Fatalf("unbound after the bump: %s to %v, want TX to the secondary %v", verdictNames[code], dst, be4a)
		}
		setFlag(true)
		if code, dst := run(); code != xdpTX || dst != be4a {
			t.Fatalf("bound without a bump: %s to %v, want the cached answer (TX to %v)", verdictNames[code], dst, be4a)
		}
		r.retireVIPCache(t)
		if code, _ := run(); code != xdpPass {
			t.Fatalf("bound again after the bump: %s, want PASS", verdictNames[code])
		}
	})
}

// onOneCPU calls fn with a function that runs the program on frame, every
// run on the same CPU (the caches are per CPU), and returns its verdict
// and output frame.
func (r *rig) onOneCPU(t *testing.T, frame []byte, fn func(run func() (uint32, []byte))) {
	t.Helper()
	err := r.ns.Do(func() error {
		var old, one unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			return err
		}
		one.Set(0)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			return err
		}
		defer func() { _ = unix.SchedSetaffinity(0, &old) }()
		fn(func() (uint32, []byte) {
			code, out, err := r.runRaw(r.objs.VipdXdp, frame)
			must(t, err)
			return code, out
		})
		return nil
	})
	must(t, err)
}

// txDst is the outer IPv4 destination of an encapsulated untagged frame
// (zero unless code is TX).
func txDst(code uint32, out []byte) netip.Addr {
	if code != xdpTX || len(out) < 34 {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte(out[30:34]))
}

// addVIPTable installs table id with rows built by row.
func (r *rig) addVIPTable(t *testing.T, id uint32, row func(uint32) vipdRow) {
	t.Helper()
	r.addVIP(t, vipNone, 0, 6, id, row)
	// addVIP also gave vipNone an entry and a filter bit: take the entry
	// back out, keeping only the table.
	must(t, r.objs.Vips4.Delete(vipdVip4Key{Addr: vipNone.As4(), Port: 0, Proto: 6}))
	must(t, r.objs.Vips4.Delete(vipdVip4Key{Addr: vipNone.As4(), Port: 0, Proto: 6, Flags: 1}))
	r.retireVIPCache(t)
}

// TestVIPCacheRetired: the loader bumps vip_gen after Program and
// Unprogram change vips4/vips6, so the program's VIP cache never answers
// from a VIP entry that has changed.
func TestVIPCacheRetired(t *testing.T) {
	ctx := context.Background()
	r := newDPRig(t)
	d := r.open(t, r.options())
	gen := func() uint32 {
		var g uint32
		must(t, d.objs.VipGen.Get(&g))
		return g
	}
	g0 := gen()
	if err := d.Program(ctx, vipProgram(testVIP4, "a", "b")); err != nil {
		t.Fatal(err)
	}
	g1 := gen()
	if g1 == g0 {
		t.Errorf("vip_gen %d unchanged by Program", g1)
	}
	if err := d.Unprogram(ctx, testVIP4); err != nil {
		t.Fatal(err)
	}
	g2 := gen()
	if g2 == g1 {
		t.Errorf("vip_gen %d unchanged by Unprogram", g2)
	}
	// The cache keeps bound flags too (vip_bound).
	if err := d.SetBound(ctx, []netip.Addr{testVIP4}); err != nil {
		t.Fatal(err)
	}
	g3 := gen()
	if g3 == g2 {
		t.Errorf("vip_gen %d unchanged by SetBound binding", g3)
	}
	if err := d.SetBound(ctx, []netip.Addr{testVIP4}); err != nil {
		t.Fatal(err)
	}
	if g := gen(); g != g3 {
		t.Errorf("vip_gen moved from %d to %d by a SetBound that changed nothing", g3, g)
	}
	if err := d.SetBound(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if g := gen(); g == g3 {
		t.Errorf("vip_gen %d unchanged by SetBound unbinding", g)
	}
}

// TestProgTrustCache: the per-CPU trust cache answers for a GUE source it
// has allowed without asking `members4`, and forgets everything once
// trust_gen is bumped, as the loader does after every change to the
// members or the director prefixes: a removed member is refused on the
// next packet.
func TestProgTrustCache(t *testing.T) {
	r := newRig(t)
	synIn := tcpFrame(t, 0, client4, 41002, vipTCP, 80, syn)
	frame := gueFrame(be4a, node4, 0, nil, synIn)
	key := binary.NativeEndian.Uint32(func() []byte { b := be4a.As4(); return b[:] }())
	r.onOneCPU(t, frame, func(run func() (uint32, []byte)) {
		if code, _ := run(); code != xdpPass {
			t.Fatalf("from a member: %s, want PASS (decapsulated)", verdictNames[code])
		}
		// Removed behind the cache's back (no bump): the cached answer
		// still holds...
		must(t, r.objs.Members4.Delete(key))
		if code, _ := run(); code != xdpPass {
			t.Fatalf("removed without a bump: %s, want the cached answer (PASS)", verdictNames[code])
		}
		// ...until the generation moves.
		r.retireTrustCache(t)
		if code, _ := run(); code != xdpDrop {
			t.Fatalf("after the bump: %s, want DROP (untrusted source)", verdictNames[code])
		}
		// A refused source is not cached: let back in, it is believed at once.
		must(t, r.objs.Members4.Put(key, uint8(1)))
		if code, _ := run(); code != xdpPass {
			t.Fatalf("member again: %s, want PASS", verdictNames[code])
		}
	})
}

// retireTrustCache does what the loader does after changing the members
// or the director prefixes: bumps trust_gen.
func (r *rig) retireTrustCache(t testing.TB) {
	t.Helper()
	var gen uint32
	must(t, r.objs.TrustGen.Get(&gen))
	must(t, r.objs.TrustGen.Set(gen+1))
}

// TestTrustCacheRetired: SetTrust bumps trust_gen, so the program's trust
// cache never answers from a trust set that has changed.
func TestTrustCacheRetired(t *testing.T) {
	ctx := context.Background()
	r := newDPRig(t)
	d := r.open(t, r.options())
	gen := func() uint32 {
		var g uint32
		must(t, d.objs.TrustGen.Get(&g))
		return g
	}
	g0 := gen()
	if err := d.SetTrust(ctx, Trust{Members: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}}); err != nil {
		t.Fatal(err)
	}
	g1 := gen()
	if g1 == g0 {
		t.Errorf("trust_gen %d unchanged by SetTrust adding members", g1)
	}
	if err := d.SetTrust(ctx, Trust{Members: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}); err != nil {
		t.Fatal(err)
	}
	if g2 := gen(); g2 == g1 {
		t.Errorf("trust_gen %d unchanged by SetTrust removing a member", g2)
	}
}

// TestProgNextHopCacheBound: the director's per-CPU next-hop cache serves
// a backend's MACs for NH_CACHE_NS (1 s), and once that has passed, for at
// most NH_CHECK_EVERY - 1 (15) more packets on a CPU: a neighbour that
// changes its MAC is followed within that bound (docs/design.md, "Next
// hops").
func TestProgNextHopCacheBound(t *testing.T) {
	r := newRig(t)
	frame := tcpFrame(t, 0, client4, 41001, vipTCP, 80, ack)
	macC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	dmac := func(code uint32, out []byte) net.HardwareAddr {
		if code != xdpTX || len(out) < 6 {
			t.Fatalf("verdict %s, want TX", verdictNames[code])
		}
		return net.HardwareAddr(out[:6])
	}
	r.onOneCPU(t, frame, func(run func() (uint32, []byte)) {
		if got := dmac(run()); got.String() != macA.String() {
			t.Fatalf("first packet to %v, want %v", got, macA)
		}
		r.ns.MustRun(t, "ip", "neigh", "replace", be4a.String(), "lladdr", macC.String(), "dev", r.dev, "nud", "permanent")
		changed := time.Now()
		// Within the second: the cached MAC (the cache is what is tested).
		if got := dmac(run()); got.String() != macA.String() {
			t.Fatalf("right after the change: to %v, want the cached %v", got, macA)
		}
		time.Sleep(time.Until(changed.Add(1100 * time.Millisecond)))
		for i := 1; ; i++ {
			got := dmac(run())
			if got.String() == macC.String() {
				t.Logf("new MAC after %v and %d packets", time.Since(changed).Round(time.Millisecond), i)
				break
			}
			if got.String() != macA.String() {
				t.Fatalf("packet %d to %v, want %v or %v", i, got, macA, macC)
			}
			// At most 15 stale packets once the second is over: the
			// 16th reads the clock.
			if i >= 16 {
				t.Fatalf("still the old MAC %d packets after the cache's second", i)
			}
		}
	})
}
