package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vipd/vipd/internal/netnstest"
)

// The rig: a private namespace whose veth (MAC nodeMAC) holds this node's
// underlay addresses, with permanent neighbours for some backends and none
// for one, so bpf_fib_lookup gives exact, known MACs. Forwarding is off
// everywhere but on lo, as on a node (docs/field-notes.md, note 3): the program looks up
// from lo (dp_config.fib_ifindex) and still gets the veth's route and MACs.
// Backend slots:
var (
	node4   = netip.MustParseAddr("10.0.0.1")
	node6   = netip.MustParseAddr("2001:db8::1")
	be4a    = netip.MustParseAddr("10.0.0.2")    // slot 1
	be4b    = netip.MustParseAddr("10.0.0.3")    // slot 2
	be4nn   = netip.MustParseAddr("10.0.0.4")    // slot 4: no neighbour
	be6a    = netip.MustParseAddr("2001:db8::2") // slot 5
	be6b    = netip.MustParseAddr("2001:db8::3") // slot 6
	macA    = net.HardwareAddr{0x02, 0xbe, 0, 0, 0, 0x02}
	macB    = net.HardwareAddr{0x02, 0xbe, 0, 0, 0, 0x03}
	client4 = netip.MustParseAddr("198.18.0.7")
	client6 = netip.MustParseAddr("2001:db8:c::7")
	router4 = netip.MustParseAddr("198.18.9.1")
	router6 = netip.MustParseAddr("2001:db8:9::1")
	dir4    = netip.MustParseAddr("10.0.0.9")  // a director sending us GUE (a member)
	stray4  = netip.MustParseAddr("10.0.0.66") // on the link, not a member

	vipTCP   = netip.MustParseAddr("192.0.2.10")       // tcp/80 -> table 0 (A, B); udp/any -> table 1 (A, B); udp/443 -> table 8 (A, B); bound
	vip6TCP  = netip.MustParseAddr("2001:db8:100::10") // tcp/443 -> table 2 (A, B); bound
	vipLocal = netip.MustParseAddr("192.0.2.20")       // tcp/80 -> table 3 (local, A); udp/53 -> table 11 (local, A); bound
	vipNB    = netip.MustParseAddr("192.0.2.21")       // tcp/80 -> table 4 (local, A); NOT bound
	vipNN    = netip.MustParseAddr("192.0.2.22")       // tcp/80 -> table 5 (no-neigh, A)
	vip6U    = netip.MustParseAddr("2001:db8:100::20") // tcp/80 -> table 6 (v6 A, v6 B): IPv6 underlay
	vipSplit = netip.MustParseAddr("192.0.2.30")       // tcp/80 -> table 7: even rows A, odd rows B
	vipL6    = netip.MustParseAddr("2001:db8:100::30") // tcp/80 -> table 9 (local, A); bound
	vipSolo  = netip.MustParseAddr("192.0.2.23")       // tcp/80 -> table 10 (local, local); bound
	vipNone  = netip.MustParseAddr("192.0.2.99")       // not a VIP, not bound
)

type rig struct {
	ns        *netnstest.NS
	dev       string // the veth the program runs on
	ifindex   int
	loIfindex int
	objs      vipdObjects
}

// newRig loads the program, fills its maps and builds the namespace.
func newRig(t testing.TB) *rig {
	t.Helper()
	netnstest.RequireRoot(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("removing memlock rlimit: %v", err)
	}
	ns := netnstest.New(t, "xdp")
	peer := netnstest.New(t, "xdpp")
	dev, _ := netnstest.Veth(t, ns, peer)
	for _, argv := range [][]string{
		{"ip", "link", "set", dev, "address", nodeMAC.String()},
		{"ip", "addr", "add", "10.0.0.1/24", "dev", dev},
		{"ip", "addr", "add", "2001:db8::1/64", "dev", dev, "nodad"},
		{"ip", "neigh", "replace", be4a.String(), "lladdr", macA.String(), "dev", dev, "nud", "permanent"},
		{"ip", "neigh", "replace", be4b.String(), "lladdr", macB.String(), "dev", dev, "nud", "permanent"},
		{"ip", "neigh", "replace", be6a.String(), "lladdr", macA.String(), "dev", dev, "nud", "permanent"},
		{"ip", "neigh", "replace", be6b.String(), "lladdr", macB.String(), "dev", dev, "nud", "permanent"},
		{"ip", "addr", "add", vipTCP.String() + "/32", "dev", "lo"},
		// "all" first: writing it sets every device, lo included.
		{"sysctl", "-qw", "net.ipv4.conf.all.forwarding=0"},
		{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"},
		{"sysctl", "-qw", "net.ipv4.conf.lo.forwarding=1"},
		{"sysctl", "-qw", "net.ipv6.conf.lo.forwarding=1"},
		{"sysctl", "-qw", "net.ipv4.tcp_syncookies=1"},
	} {
		ns.MustRun(t, argv...)
	}
	for _, kv := range [][2]string{
		{"net.ipv4.conf." + dev + ".forwarding", "0"}, {"net.ipv6.conf." + dev + ".forwarding", "0"},
		{"net.ipv4.ip_forward", "0"}, {"net.ipv4.conf.lo.forwarding", "1"}, {"net.ipv6.conf.lo.forwarding", "1"},
	} {
		if got := strings.TrimSpace(ns.MustRun(t, "sysctl", "-n", kv[0])); got != kv[1] {
			t.Fatalf("%s = %s, want %s", kv[0], got, kv[1])
		}
	}
	r := &rig{ns: ns, dev: dev}
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		r.ifindex = ifi.Index
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		r.loIfindex = lo.Index
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := loadVipdObjects(&r.objs, nil); err != nil {
		t.Fatalf("loading vipd: %v", err)
	}
	t.Cleanup(func() { r.objs.Close() })
	r.fill(t)
	return r
}

func addr16(a netip.Addr) (b [16]byte, fam uint8) {
	if a.Is4() {
		a4 := a.As4()
		copy(b[:], a4[:])
		return b, 4
	}
	return a.As16(), 6
}

// rigMembers are the cluster members the rig's trust boundary knows.
var rigMembers = []netip.Addr{node4, node6, be4a, be4b, be4nn, be6a, be6b, dir4}

// rigVIPIdx is each VIP's per-VIP counter index in the rig.
var rigVIPIdx = map[netip.Addr]uint32{vipTCP: 0, vip6TCP: 1, vipLocal: 2, vipNB: 3, vipNN: 4, vip6U: 5, vipSplit: 6,
	vipL6: 7, vipSolo: 8}

func (r *rig) fill(t testing.TB) {
	t.Helper()
	cfg := vipdDpConfig{GuePort: testGUEPort, HashSeed: testHashSeed, Flags: 1 | 2, FibIfindex: uint32(r.loIfindex)}
	cfg.Addr4 = node4.As4()
	cfg.Addr6 = node6.As16()
	must(t, r.objs.Config.Put(uint32(0), cfg))
	for _, m := range rigMembers {
		if m.Is4() {
			b := m.As4()
			must(t, r.objs.Members4.Put(binary.NativeEndian.Uint32(b[:]), uint8(1)))
		} else {
			must(t, r.objs.Members6.Put(vipdIn6Key{Addr: m.As16()}, uint8(1)))
		}
	}

	slots := map[uint32]netip.Addr{1: be4a, 2: be4b, 3: node4, 4: be4nn, 5: be6a, 6: be6b}
	for slot, a := range slots {
		b, fam := addr16(a)
		be := vipdBackend{Addr: b, Family: fam}
		if slot == 3 {
			be.Flags = 1
		}
		must(t, r.objs.Backends.Put(slot, be))
	}
	type vipEntry struct {
		addr  netip.Addr
		port  uint16
		proto uint8
		id    uint32
		row   func(i uint32) vipdRow
	}
	same := func(p, s uint16) func(uint32) vipdRow {
		return func(uint32) vipdRow { return vipdRow{Primary: p, Secondary: s} }
	}
	for _, v := range []vipEntry{
		{vipTCP, 80, 6, 0, same(1, 2)},
		{vipTCP, 0, 17, 1, same(1, 2)},
		{vipTCP, 443, 17, 8, same(1, 2)},
		{vip6TCP, 443, 6, 2, same(1, 2)},
		{vipLocal, 80, 6, 3, same(3, 1)},
		{vipLocal, 53, 17, 11, same(3, 1)},
		{vipL6, 80, 6, 9, same(3, 1)},
		{vipSolo, 80, 6, 10, same(3, 3)},
		{vipNB, 80, 6, 4, same(3, 1)},
		{vipNN, 80, 6, 5, same(4, 1)},
		{vip6U, 80, 6, 6, same(5, 6)},
		{vipSplit, 80, 6, 7, func(i uint32) vipdRow {
			if i%2 == 0 {
				return vipdRow{Primary: 1, Secondary: 2}
			}
			return vipdRow{Primary: 2, Secondary: 1}
		}},
	} {
		r.addVIP(t, v.addr, v.port, v.proto, v.id, v.row)
	}
	for a, idx := range rigVIPIdx {
		b, fam := addr16(a)
		must(t, r.objs.VipAddrs.Put(vipdAddrKey{Addr: b, Family: fam}, vipdAddrInfo{Vip: idx}))
	}
	for _, a := range []netip.Addr{vipTCP, vip6TCP, vipLocal, vipL6, vipSolo} {
		r.setBound(t, a, true)
	}
}

// setBound puts a VIP in the bound set or takes it out.
func (r *rig) setBound(t testing.TB, a netip.Addr, bound bool) {
	t.Helper()
	b, fam := addr16(a)
	info := vipdAddrInfo{Vip: rigVIPIdx[a]}
	if bound {
		info.Flags = 1
	}
	must(t, r.objs.VipAddrs.Put(vipdAddrKey{Addr: b, Family: fam}, info))
	// As the loader does: the VIP cache keeps bound flags.
	r.retireVIPCache(t)
}

// addVIP installs a VIP's service with a table built by row, sets its
// filter bit, and, as the loader does, gives its protocol the entry later
// fragments match (pointing at the table of its first service).
func (r *rig) addVIP(t testing.TB, a netip.Addr, port uint16, proto uint8, id uint32, row func(uint32) vipdRow) {
	t.Helper()
	inner, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: TableRows / 2})
	must(t, err)
	defer inner.Close()
	keys := make([]uint32, TableRows/2)
	vals := make([]vipdRowPair, TableRows/2)
	for i := range keys {
		keys[i] = uint32(i)
		vals[i].R[0] = row(uint32(2 * i))
		vals[i].R[1] = row(uint32(2*i + 1))
	}
	_, err = inner.BatchUpdate(keys, vals, nil)
	must(t, err)
	must(t, r.objs.Tables.Put(id, inner))
	word, shift := vipFilterBit(a)
	var w uint64
	must(t, r.objs.VipFilter.Lookup(word, &w))
	bits := uint64(1) // VF_PORTS
	if port == 0 {
		bits = 2 // VF_ANY_PORT
	}
	must(t, r.objs.VipFilter.Put(word, w|bits<<shift))
	r.putVIPKey(t, a, port, proto, 0, vipdVipInfo{Table: id, Vip: rigVIPIdx[a]}, false)
	r.putVIPKey(t, a, 0, proto, 1, vipdVipInfo{Table: id, Vip: rigVIPIdx[a]}, true)
}

// putVIPKey writes a `vips4`/`vips6` entry; keep leaves an existing one.
func (r *rig) putVIPKey(t testing.TB, a netip.Addr, port uint16, proto, flags uint8, info vipdVipInfo, keep bool) {
	t.Helper()
	var (
		m   *ebpf.Map
		key any
	)
	if a.Is4() {
		m, key = r.objs.Vips4, vipdVip4Key{Addr: a.As4(), Port: port, Proto: proto, Flags: flags}
	} else {
		m, key = r.objs.Vips6, vipdVip6Key{Addr: a.As16(), Port: port, Proto: proto, Flags: flags}
	}
	var have vipdVipInfo
	if keep && m.Lookup(key, &have) == nil {
		return
	}
	must(t, m.Put(key, info))
	r.retireVIPCache(t)
}

// retireVIPCache does what the loader does after changing `vips4`/`vips6`:
// bumps vip_gen, so the program's VIP cache forgets what it held.
func (r *rig) retireVIPCache(t testing.TB) {
	t.Helper()
	var gen uint32
	must(t, r.objs.VipGen.Get(&gen))
	must(t, r.objs.VipGen.Set(gen+1))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// xdpMd is struct xdp_md, the context BPF_PROG_TEST_RUN takes for XDP.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// run runs the program once on frame inside the rig's namespace, ingress
// on the rig's veth.
func (r *rig) run(t testing.TB, prog *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	var (
		ret uint32
		out []byte
	)
	err := r.ns.Do(func() (err error) {
		ret, out, err = r.runRaw(prog, frame)
		return err
	})
	if err != nil {
		t.Fatalf("running program: %v", err)
	}
	return ret, out
}

// runRaw runs the program once on frame; call it inside r.ns.Do.
func (r *rig) runRaw(prog *ebpf.Program, frame []byte) (uint32, []byte, error) {
	opts := &ebpf.RunOptions{
		Data:    frame,
		DataOut: make([]byte, len(frame)+256),
		Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(r.ifindex)},
	}
	ret, err := prog.Run(opts)
	return ret, opts.DataOut, err
}

func (r *rig) stats(t testing.TB) map[vipdStat]uint64 {
	t.Helper()
	out := map[vipdStat]uint64{}
	ncpu, err := ebpf.PossibleCPU()
	must(t, err)
	vals := make([]uint64, ncpu)
	for s := vipdStat(0); s < vipdStatSTAT_MAX; s++ {
		must(t, r.objs.Stats.Lookup(uint32(s), &vals))
		var sum uint64
		for _, v := range vals {
			sum += v
		}
		if sum != 0 {
			out[s] = sum
		}
	}
	return out
}

func statDelta(before, after map[vipdStat]uint64) map[vipdStat]uint64 {
	d := map[vipdStat]uint64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

var verdictNames = map[uint32]string{0: "ABORTED", 1: "DROP", 2: "PASS", 3: "TX", 4: "REDIRECT"}

const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

type progCase struct {
	name      string
	in        []byte
	wantCode  uint32
	wantOut   []byte // nil: the input unchanged
	wantStats map[vipdStat]uint64
}

func (r *rig) check(t *testing.T, c progCase) []byte {
	t.Helper()
	before := r.stats(t)
	code, out := r.run(t, r.objs.VipdXdp, c.in)
	if code != c.wantCode {
		t.Errorf("verdict %s, want %s", verdictNames[code], verdictNames[c.wantCode])
	}
	want := c.wantOut
	if want == nil {
		want = c.in
	}
	if !bytes.Equal(out, want) {
		t.Errorf("output frame differs:\n got % x\nwant % x", out, want)
	}
	if diff := cmp.Diff(c.wantStats, statDelta(before, r.stats(t))); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	return out
}

func TestProgDirector(t *testing.T) {
	r := newRig(t)
	h := func(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, proto uint8) uint32 {
		return flowHash(testHashSeed, src, dst, sport, dport, proto)
	}
	tx := map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_TX: 1}
	short := map[vipdStat]uint64{vipdStatSTAT_PASS_SHORT_L4: 1}

	synV4 := tcpFrame(t, 0, client4, 40000, vipTCP, 80, syn)
	ackV4 := tcpFrame(t, 0, client4, 40000, vipTCP, 80, ack)
	vlan1 := tcpFrame(t, 1, client4, 40001, vipTCP, 80, syn)
	vlan2 := tcpFrame(t, 2, client4, 40002, vipTCP, 80, ack)
	syn6 := tcpFrame(t, 0, client6, 40003, vip6TCP, 443, syn)
	udp4 := udpFrame(t, client4, 5353, vipTCP, 53, []byte("query"))
	udp443 := udpFrame(t, client4, 5353, vipTCP, 443, []byte("quic"))
	opts := ipOptionsFrame(t)
	ext6 := ipv6ExtFrame(t)
	frag1, frag2 := ipv4Fragments(t)
	frag6 := ipv6Fragment(t)
	laterTCP := ipv4LaterFragmentTCP(t)
	laterNone := laterFragment(t, client4, vipNone, layers.IPProtocolTCP)
	laterICMP := laterFragment(t, client4, vipTCP, layers.IPProtocolICMPv4)
	synU6 := tcpFrame(t, 0, client6, 40004, vip6U, 80, syn)
	hU6 := h(client6, 40004, vip6U, 80, 6)

	for _, c := range []progCase{
		{name: "ipv4 tcp syn", in: synV4, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(synV4, macA, nodeMAC, node4, h(client4, 40000, vipTCP, 80, 6), be4a, be4b)},
		{name: "ipv4 tcp ack", in: ackV4, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(ackV4, macA, nodeMAC, node4, h(client4, 40000, vipTCP, 80, 6), be4a, be4b)},
		{name: "802.1Q tag kept", in: vlan1, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(vlan1, macA, nodeMAC, node4, h(client4, 40001, vipTCP, 80, 6), be4a, be4b)},
		{name: "802.1ad+802.1Q tags kept", in: vlan2, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(vlan2, macA, nodeMAC, node4, h(client4, 40002, vipTCP, 80, 6), be4a, be4b)},
		{name: "ipv6 inner over ipv4", in: syn6, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(syn6, macA, nodeMAC, node4, h(client6, 40003, vip6TCP, 443, 6), be4a, be4b)},
		{name: "udp port vip", in: udp443, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(udp443, macA, nodeMAC, node4, h(client4, 5353, vipTCP, 443, 17), be4a, be4b)},
		{name: "udp any-port vip", in: udp4, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(udp4, macA, nodeMAC, node4, h(client4, 5353, vipTCP, 53, 17), be4a, be4b)},
		{name: "ipv4 options honoured", in: opts, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(opts, macA, nodeMAC, node4, h(client4, 40005, vipTCP, 80, 6), be4a, be4b)},
		{name: "ipv6 extension headers skipped", in: ext6, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(ext6, macA, nodeMAC, node4, h(client6, 40006, vip6TCP, 443, 6), be4a, be4b)},
		{name: "ipv4 first fragment hashes addresses only", in: frag1, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(frag1, macA, nodeMAC, node4, h(client4, 0, vipTCP, 0, 17), be4a, be4b)},
		{name: "ipv4 later fragment, same hash", in: frag2, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(frag2, macA, nodeMAC, node4, h(client4, 0, vipTCP, 0, 17), be4a, be4b)},
		{name: "ipv6 fragment header", in: frag6, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(frag6, macA, nodeMAC, node4, h(client6, 0, vip6TCP, 0, 6), be4a, be4b)},
		// Issue 11: every fragment reaches the VIP's table (it passed before).
		{name: "later fragment of a port-specific vip: by address and protocol", in: laterTCP, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(laterTCP, macA, nodeMAC, node4, h(client4, 0, vipTCP, 0, 6), be4a, be4b)},
		{name: "later fragment of no vip passes", in: laterNone, wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_FRAGMENT: 1}},
		{name: "later fragment of a vip address, other protocol, passes", in: laterICMP, wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_FRAGMENT: 1}},
		{name: "ipv6 underlay", in: synU6, wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(synU6, macA, nodeMAC, node6, hU6, be6a, be6b)},
		{name: "local primary, vip bound: passed as is", in: tcpFrame(t, 0, client4, 40007, vipLocal, 80, syn),
			wantCode: xdpPass, wantStats: map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_LOCAL_PASS: 1}},
		{name: "local primary, vip not bound: secondary, no alternate", in: tcpFrame(t, 0, client4, 40008, vipNB, 80, syn),
			wantCode: xdpTX, wantStats: tx,
			wantOut: encapOf(tcpFrame(t, 0, client4, 40008, vipNB, 80, syn), macA, nodeMAC, node4, h(client4, 40008, vipNB, 80, 6), be4a)},
		{name: "unresolved neighbour: encapsulated frame passed", in: tcpFrame(t, 0, client4, 40009, vipNN, 80, syn),
			wantCode: xdpPass, wantStats: map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_NO_NEIGH: 1},
			wantOut: encapOf(tcpFrame(t, 0, client4, 40009, vipNN, 80, syn), nodeMAC, clientMAC, node4, h(client4, 40009, vipNN, 80, 6), be4nn, be4a)},
		{name: "non-vip tcp", in: tcpFrame(t, 0, client4, 40010, vipNone, 80, syn), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_NON_VIP: 1}},
		{name: "vip address, other port", in: tcpFrame(t, 0, client4, 40011, vipTCP, 22, syn), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_NON_VIP: 1}},
		{name: "arp", in: arpFrame(t), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_NON_VIP: 1}},
		{name: "udp to our address, not the gue port", in: udpFrame(t, client4, 1000, node4, 53, []byte("x")), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_NON_VIP: 1}},
		{name: "truncated ipv4", in: tcpFrame(t, 0, client4, 40012, vipTCP, 80, syn)[:30], wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_NON_VIP: 1}},
		// Issue 11 item 3: never encapsulated.
		{name: "tcp header of 14 bytes", in: cutL4(tcpFrame(t, 0, client4, 40020, vipTCP, 80, ack), 14, 0), wantCode: xdpPass, wantStats: short},
		{name: "tcp header of 19 bytes", in: cutL4(tcpFrame(t, 0, client4, 40021, vipTCP, 80, ack), 19, 0), wantCode: xdpPass, wantStats: short},
		{name: "tcp header of 14 bytes in a padded frame", in: cutL4(tcpFrame(t, 0, client4, 40022, vipTCP, 80, ack), 14, 60),
			wantCode: xdpPass, wantStats: short},
		{name: "ipv6 tcp header of 16 bytes", in: cutL4(tcpFrame(t, 0, client6, 40023, vip6TCP, 443, ack), 16, 0), wantCode: xdpPass, wantStats: short},
		{name: "udp header of 6 bytes", in: cutL4(udpFrame(t, client4, 40024, vipTCP, 443, nil), 6, 0), wantCode: xdpPass, wantStats: short},
		{name: "ip length beyond the frame", in: longIPLength(tcpFrame(t, 0, client4, 40025, vipTCP, 80, ack)), wantCode: xdpPass, wantStats: short},
		{name: "icmp error quoting 4 bytes of tcp", in: cutL4(icmpErrorFrame(t, client4, 40026, vipTCP, 80), 20+4, 0), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_ICMP_SHORT_QUOTE: 1}},
		{name: "icmpv6 error quoting 4 bytes of tcp", in: cutL4(icmpErrorFrame(t, client6, 40027, vip6TCP, 443), 4+40+4, 0), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_ICMP_SHORT_QUOTE: 1}},
		{name: "short tcp header to no vip", in: cutL4(tcpFrame(t, 0, client4, 40028, vipNone, 80, ack), 14, 0), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_NON_VIP: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := r.check(t, c)
			if c.wantCode == xdpTX {
				dst, _, _, inner := checkGUE(t, out, map[bool]netip.Addr{true: node4, false: node6}[out[l2Len(out)]>>4 == 4])
				if !bytes.Equal(inner, c.in[l2Len(c.in):]) {
					t.Errorf("inner packet changed")
				}
				_ = dst
			}
		})
	}
}

// TestProgICMPSteering: ICMP errors about a flow reach the backend that owns
// the flow, on a table whose rows alternate between two backends.
func TestProgICMPSteering(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		name   string
		client netip.Addr
		vip    netip.Addr
		cport  uint16
	}{
		{"icmp frag-needed", client4, vipSplit, 50000},
		{"icmp frag-needed other row", client4, vipSplit, 50001},
		{"icmpv6 packet-too-big", client6, vip6TCP, 50002},
	} {
		t.Run(c.name, func(t *testing.T) {
			vport := uint16(80)
			if c.vip == vip6TCP {
				vport = 443
			}
			flow := tcpFrame(t, 0, c.client, c.cport, c.vip, vport, syn)
			icmp := icmpErrorFrame(t, c.client, c.cport, c.vip, vport)
			hash := flowHash(testHashSeed, c.client, c.vip, c.cport, vport, 6)
			wantBE, wantMAC, other := be4a, macA, be4b
			if c.vip == vipSplit && hash%2 == 1 {
				wantBE, wantMAC, other = be4b, macB, be4a
			}
			flowOut := r.check(t, progCase{in: flow, wantCode: xdpTX,
				wantOut:   encapOf(flow, wantMAC, nodeMAC, node4, hash, wantBE, other),
				wantStats: map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_TX: 1}})
			icmpOut := r.check(t, progCase{in: icmp, wantCode: xdpTX,
				wantOut:   encapOf(icmp, wantMAC, nodeMAC, node4, hash, wantBE, other),
				wantStats: map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_TX: 1, vipdStatSTAT_DIRECTOR_ICMP: 1}})
			fd, _, _, _ := checkGUE(t, flowOut, node4)
			id, _, _, _ := checkGUE(t, icmpOut, node4)
			if fd != id {
				t.Errorf("flow went to %v, its ICMP error to %v", fd, id)
			}
		})
	}
	// Both backends of the split table are reached by some flow.
	seen := map[uint32]bool{}
	for p := uint16(50000); p < 50016; p++ {
		seen[flowHash(testHashSeed, client4, vipSplit, p, 80, 6)%2] = true
	}
	if len(seen) != 2 {
		t.Errorf("16 flows all hash to the same parity: test does not prove row choice")
	}
}

// serveLocal binds vip on lo in the rig's namespace, listens on vip:port
// and opens one connection to it from vip itself. It returns the client
// port: a segment vip:client -> vip:port belongs to the accepted,
// established socket.
func (r *rig) serveLocal(t testing.TB, vip netip.Addr, port uint16) uint16 {
	t.Helper()
	network, plen := "tcp4", "/32"
	if vip.Is6() {
		network, plen = "tcp6", "/128"
	}
	r.ns.MustRun(t, "ip", "addr", "add", vip.String()+plen, "dev", "lo", "nodad")
	var client uint16
	must(t, r.ns.Do(func() error {
		ln, err := net.Listen(network, netip.AddrPortFrom(vip, port).String())
		if err != nil {
			return err
		}
		t.Cleanup(func() { ln.Close() })
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				accepted <- c
			}
			close(accepted)
		}()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: vip.AsSlice()}}
		c, err := d.Dial(network, netip.AddrPortFrom(vip, port).String())
		if err != nil {
			return err
		}
		t.Cleanup(func() { c.Close() })
		if sc, ok := <-accepted; ok {
			t.Cleanup(func() { sc.Close() })
		}
		client = uint16(c.LocalAddr().(*net.TCPAddr).Port)
		return nil
	}))
	return client
}

// TestProgDirectorLocalSecondChance: the row's primary is this node and the
// VIP is bound, so packets go to the local stack, except a TCP segment
// without SYN that no local socket owns while the secondary is another
// node: a drain (or undrain) moved the row's primary here and the flow
// lives on the secondary. That segment goes to the secondary as a second
// chance here would send it (next_hop 1, no alternate left), so
// the secondary decapsulates it (TestProgBackend's "last hop" case) and
// never forwards it again. A listener alone does not own a segment (no SYN
// cookie); an established socket does. In GLB's format that is: from this
// node to the secondary, hops [secondary], next_hop 1.
func TestProgDirectorLocalSecondChance(t *testing.T) {
	r := newRig(t)
	est := r.serveLocal(t, vipLocal, 80)
	h := func(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) uint32 {
		return flowHash(testHashSeed, src, dst, sport, dport, 6)
	}
	second := map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_LOCAL_SECOND_CHANCE: 1, vipdStatSTAT_DIRECTOR_TX: 1}
	local := map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_LOCAL_PASS: 1}

	ackV4 := tcpFrame(t, 0, client4, 44000, vipLocal, 80, ack)
	rstV4 := tcpFrame(t, 0, client4, 44001, vipLocal, 80, rst)
	vlan := tcpFrame(t, 1, client4, 44002, vipLocal, 80, ack)
	ackV6 := tcpFrame(t, 0, client6, 44003, vipL6, 80, ack)
	for _, c := range []progCase{
		{name: "ack, only a listener (no syn cookie): to the secondary, next_hop 1", in: ackV4, wantCode: xdpTX, wantStats: second,
			wantOut: encapNextOf(ackV4, macA, nodeMAC, node4, h(client4, 44000, vipLocal, 80), 1, be4a, be4a)},
		{name: "rst without a socket: to the secondary, as on the backend path", in: rstV4, wantCode: xdpTX, wantStats: second,
			wantOut: encapNextOf(rstV4, macA, nodeMAC, node4, h(client4, 44001, vipLocal, 80), 1, be4a, be4a)},
		{name: "802.1Q tagged ack: tag kept", in: vlan, wantCode: xdpTX, wantStats: second,
			wantOut: encapNextOf(vlan, macA, nodeMAC, node4, h(client4, 44002, vipLocal, 80), 1, be4a, be4a)},
		{name: "ipv6 inner ack, no socket at all: to the secondary", in: ackV6, wantCode: xdpTX, wantStats: second,
			wantOut: encapNextOf(ackV6, macA, nodeMAC, node4, h(client6, 44003, vipL6, 80), 1, be4a, be4a)},
		{name: "ack of an established socket: passed as is", in: tcpFrame(t, 0, vipLocal, est, vipLocal, 80, ack),
			wantCode: xdpPass, wantStats: local},
		{name: "syn: passed as is", in: tcpFrame(t, 0, client4, 44004, vipLocal, 80, syn), wantCode: xdpPass, wantStats: local},
		{name: "ipv6 syn: passed as is", in: tcpFrame(t, 0, client6, 44005, vipL6, 80, syn), wantCode: xdpPass, wantStats: local},
		{name: "secondary is the primary: passed as is", in: tcpFrame(t, 0, client4, 44006, vipSolo, 80, ack),
			wantCode: xdpPass, wantStats: local},
		{name: "udp: no second chance, passed as is", in: udpFrame(t, client4, 44007, vipLocal, 53, []byte("q")),
			wantCode: xdpPass, wantStats: local},
		{name: "icmp error: passed as is", in: icmpErrorFrame(t, client4, 44008, vipLocal, 80), wantCode: xdpPass, wantStats: local},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := r.check(t, c)
			if c.wantCode != xdpTX {
				return
			}
			dst, nh, hops, inner := checkGUE(t, out, node4)
			// GLB: what a second chance here sends, from this node with
			// the used alternate in the list (issue 11: was [node, secondary]).
			if diff := cmp.Diff([]netip.Addr{be4a}, hops, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("hops (-want +got):\n%s", diff)
			}
			if dst != be4a || nh != 1 {
				t.Errorf("sent to %v with next_hop %d, want %v, 1", dst, nh, be4a)
			}
			if !bytes.Equal(inner, c.in[l2Len(c.in):]) {
				t.Errorf("inner packet changed")
			}
			p := gopacket.NewPacket(inner, map[bool]gopacket.LayerType{true: layers.LayerTypeIPv4, false: layers.LayerTypeIPv6}[inner[0]>>4 == 4], gopacket.Default)
			if tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP); tcp == nil || tcp.SYN {
				t.Errorf("inner segment is not TCP without SYN: %v", p)
			}
		})
	}
}

func TestProgBackend(t *testing.T) {
	r := newRig(t)
	// A listener on the VIP and one established connection to it.
	var estPort uint16
	var conns []net.Conn
	must(t, r.ns.Do(func() error {
		ln, err := net.Listen("tcp4", vipTCP.String()+":80")
		if err != nil {
			return err
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: vipTCP.AsSlice()}}
		c, err := d.Dial("tcp4", vipTCP.String()+":80")
		if err != nil {
			return err
		}
		conns = append(conns, c)
		estPort = uint16(c.LocalAddr().(*net.TCPAddr).Port)
		return nil
	}))
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})

	// GLB's format: the alternates only (issue 11: vipd listed this node
	// as hops[0] before).
	hops := []netip.Addr{be4a}
	synIn := tcpFrame(t, 0, client4, 41000, vipTCP, 80, syn)
	ackIn := tcpFrame(t, 0, client4, 41001, vipTCP, 80, ack)
	estIn := tcpFrame(t, 0, vipTCP, estPort, vipTCP, 80, ack)
	udpIn := udpFrame(t, client4, 41002, vipTCP, 9000, []byte("q"))
	v6In := tcpFrame(t, 0, client6, 41003, vip6TCP, 443, syn)
	loopIn := tcpFrame(t, 0, client4, 41004, vipNone, 80, syn)
	nbIn := tcpFrame(t, 0, client4, 41005, vipNB, 80, ack)

	gSyn := gueFrame(dir4, node4, 0, hops, synIn)
	gAck := gueFrame(dir4, node4, 0, hops, ackIn)
	// GLB's last hop: the alternate be4a forwarded it here (from itself,
	// next_hop = hop_count).
	gAckLast := gueFrame(be4a, node4, 1, []netip.Addr{node4}, ackIn)
	gEst := gueFrame(dir4, node4, 0, hops, estIn)
	gUDP := gueFrame(dir4, node4, 0, hops, udpIn)
	gV6 := gueFrame(dir4, node4, 0, hops, v6In)
	gV6U := gueFrame(be6b, node6, 0, []netip.Addr{be6a}, synIn)
	gLoop := gueFrame(dir4, node4, 0, hops, loopIn)
	gNB := gueFrame(dir4, node4, 0, hops, nbIn)
	gBad := append([]byte(nil), gSyn...)
	gBad[14+20+8] |= 0x40 // GUE version 1

	// Second chance (GLB): from this node to hops[0], next_hop 1, TTL
	// down, fresh checksum, MACs of the next hop (issue 11: the source was
	// the director's before).
	fwd := gueFrame(node4, be4a, 1, hops, ackIn)
	copy(fwd[0:], macA)
	copy(fwd[6:], nodeMAC)
	fwd[14+8]-- // TTL
	binary.BigEndian.PutUint16(fwd[14+10:], 0)
	binary.BigEndian.PutUint16(fwd[14+10:], ipChecksum(fwd[14:14+20]))

	// Second chance to a hop without a neighbour entry: the rewritten frame
	// goes to the stack with its MACs unchanged.
	gNN := gueFrame(dir4, node4, 0, []netip.Addr{be4nn}, ackIn)
	fwdNN := gueFrame(node4, be4nn, 1, []netip.Addr{be4nn}, ackIn)
	fwdNN[14+8]--
	binary.BigEndian.PutUint16(fwdNN[14+10:], 0)
	binary.BigEndian.PutUint16(fwdNN[14+10:], ipChecksum(fwdNN[14:14+20]))
	// Over IPv6: hop limit down, no header checksum.
	hops6 := []netip.Addr{be6a}
	gAck6 := gueFrame(be6b, node6, 0, hops6, ackIn)
	fwd6 := gueFrame(node6, be6a, 1, hops6, ackIn)
	copy(fwd6[0:], macA)
	copy(fwd6[6:], nodeMAC)
	fwd6[14+7]--

	for _, c := range []progCase{
		{name: "syn: decapsulated", in: gSyn, wantCode: xdpPass, wantOut: decapOf(gSyn, synIn),
			wantStats: map[vipdStat]uint64{vipdStatSTAT_BACKEND_DECAP: 1}},
		{name: "ack, only a listener (no syn cookie), hop left: second chance", in: gAck, wantCode: xdpTX, wantOut: fwd,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_BACKEND_FORWARD_TX: 1}},
		{name: "second chance to an unresolved neighbour: rewritten frame passed", in: gNN, wantCode: xdpPass, wantOut: fwdNN,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_BACKEND_FORWARD_NO_NEIGH: 1}},
		{name: "second chance over ipv6", in: gAck6, wantCode: xdpTX, wantOut: fwd6,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_BACKEND_FORWARD_TX: 1}},
		{name: "ack, no socket, last hop: decapsulated", in: gAckLast, wantCode: xdpPass, wantOut: decapOf(gAckLast, ackIn),
			wantStats: map[vipdStat]uint64{vipdStatSTAT_BACKEND_DECAP: 1}},
		{name: "ack of an established socket: decapsulated", in: gEst, wantCode: xdpPass, wantOut: decapOf(gEst, estIn),
			wantStats: map[vipdStat]uint64{vipdStatSTAT_BACKEND_DECAP: 1}},
		{name: "udp: decapsulated", in: gUDP, wantCode: xdpPass, wantOut: decapOf(gUDP, udpIn),
			wantStats: map[vipdStat]uint64{vipdStatSTAT_BACKEND_DECAP: 1}},
		{name: "ipv6 inner: decapsulated", in: gV6, wantCode: xdpPass, wantOut: decapOf(gV6, v6In),
			wantStats: map[vipdStat]uint64{vipdStatSTAT_BACKEND_DECAP: 1}},
		{name: "ipv6 underlay: decapsulated", in: gV6U, wantCode: xdpPass, wantOut: decapOf(gV6U, synIn),
			wantStats: map[vipdStat]uint64{vipdStatSTAT_BACKEND_DECAP: 1}},
		{name: "loop guard: vip not bound", in: gLoop, wantCode: xdpDrop,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_DROP_LOOP_GUARD: 1}},
		{name: "loop guard: programmed but unbound vip", in: gNB, wantCode: xdpDrop,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_DROP_LOOP_GUARD: 1}},
		{name: "malformed gue", in: gBad, wantCode: xdpDrop,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_DROP_GUE_MALFORMED: 1}},
		{name: "gue to another node: not ours, passed", in: gueFrame(dir4, be4b, 0, hops, synIn), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_NON_VIP: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := r.check(t, c)
			switch c.wantCode {
			case xdpTX:
				dst, nh, _, inner := checkGUEFrame(t, out, netip.Addr{}, false)
				if (dst != be4a && dst != be6a) || nh != 1 || !bytes.Equal(inner, ackIn[14:]) {
					t.Errorf("forwarded to %v next_hop %d", dst, nh)
				}
			case xdpPass:
				if c.wantOut != nil {
					p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
					if p.ErrorLayer() != nil {
						t.Errorf("decapsulated frame does not decode: %v", p.ErrorLayer().Error())
					}
					if p.Layer(layers.LayerTypeTCP) == nil && p.Layer(layers.LayerTypeUDP) == nil {
						t.Errorf("decapsulated frame has no transport layer: %v", p)
					}
				}
			}
		})
	}
}

// TestProgForwardingDisabled: bpf_fib_lookup refuses to route unless
// forwarding is on for the device it looks up from; the packet is then
// dropped and counted, never passed. The rig keeps forwarding off on the
// veth, so looking up from the ingress device (fib_ifindex 0, the old
// behaviour) is refused too: that is why the program looks up from lo.
func TestProgForwardingDisabled(t *testing.T) {
	fwdDisabled := map[vipdStat]uint64{vipdStatSTAT_DROP_FIB_FWD_DISABLED: 1}
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, r *rig)
		in    func(t testing.TB) []byte
	}{
		{"lo ipv4 forwarding off", func(t *testing.T, r *rig) {
			r.ns.MustRun(t, "sysctl", "-qw", "net.ipv4.conf.lo.forwarding=0")
		}, func(t testing.TB) []byte { return tcpFrame(t, 0, client4, 42000, vipTCP, 80, syn) }},
		{"lo ipv6 forwarding off", func(t *testing.T, r *rig) {
			r.ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.lo.forwarding=0")
		}, func(t testing.TB) []byte { return tcpFrame(t, 0, client6, 42000, vip6U, 80, syn) }},
		{"ingress lookup, uplink forwarding off", func(t *testing.T, r *rig) {
			var cfg vipdDpConfig
			must(t, r.objs.Config.Lookup(uint32(0), &cfg))
			cfg.FibIfindex = 0
			must(t, r.objs.Config.Put(uint32(0), cfg))
		}, func(t testing.TB) []byte { return tcpFrame(t, 0, client4, 42000, vipTCP, 80, syn) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			c.setup(t, r)
			r.check(t, progCase{in: c.in(t), wantCode: xdpDrop, wantStats: fwdDisabled})
		})
	}
}

func arpFrame(t testing.TB) []byte {
	return serialize(t, &layers.Ethernet{SrcMAC: clientMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: clientMAC, SourceProtAddress: client4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: vipTCP.AsSlice()})
}

func ipOptionsFrame(t testing.TB) []byte {
	ip := ipLayer(client4, vipTCP, layers.IPProtocolTCP).(*layers.IPv4)
	ip.Options = []layers.IPv4Option{{OptionType: 7, OptionLength: 11, OptionData: make([]byte, 9)}} // record route
	tcp := &layers.TCP{SrcPort: 40005, DstPort: 80, SYN: true, Window: 1024}
	must(t, tcp.SetNetworkLayerForChecksum(ip))
	f := serialize(t, append(l2Layers(0, layers.EthernetTypeIPv4), ip, tcp)...)
	if f[14]&0x0f != 8 {
		t.Fatalf("ihl %d, want 8", f[14]&0x0f)
	}
	return f
}

// ipv6ExtFrame: hop-by-hop and destination options before TCP.
func ipv6ExtFrame(t testing.TB) []byte {
	ip := ipLayer(client6, vip6TCP, layers.IPProtocolTCP).(*layers.IPv6)
	tcp := &layers.TCP{SrcPort: 40006, DstPort: 443, SYN: true, Window: 1024}
	must(t, tcp.SetNetworkLayerForChecksum(ip))
	seg := serialize(t, tcp)
	ext := []byte{60, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0}
	ip.NextHeader = layers.IPProtocolIPv6HopByHop
	return serialize(t, append(l2Layers(0, layers.EthernetTypeIPv6), ip, gopacket.Payload(append(ext, seg...)))...)
}

// ipv4Fragments: a UDP datagram to the any-port VIP in two fragments.
func ipv4Fragments(t testing.TB) ([]byte, []byte) {
	first := ipLayer(client4, vipTCP, layers.IPProtocolUDP).(*layers.IPv4)
	first.Flags = layers.IPv4MoreFragments
	udp := []byte{0x13, 0x88, 0, 53, 0, 40, 0, 0}
	f1 := serialize(t, append(l2Layers(0, layers.EthernetTypeIPv4), first, gopacket.Payload(append(udp, make([]byte, 16)...)))...)
	later := ipLayer(client4, vipTCP, layers.IPProtocolUDP).(*layers.IPv4)
	later.FragOffset = 3
	f2 := serialize(t, append(l2Layers(0, layers.EthernetTypeIPv4), later, gopacket.Payload(make([]byte, 16)))...)
	return f1, f2
}

func ipv4LaterFragmentTCP(t testing.TB) []byte {
	later := ipLayer(client4, vipTCP, layers.IPProtocolTCP).(*layers.IPv4)
	later.FragOffset = 100
	return serialize(t, append(l2Layers(0, layers.EthernetTypeIPv4), later, gopacket.Payload(make([]byte, 24)))...)
}

// ipv6Fragment: first fragment of a TCP segment to the IPv6 VIP.
func ipv6Fragment(t testing.TB) []byte {
	ip := ipLayer(client6, vip6TCP, layers.IPProtocolTCP).(*layers.IPv6)
	ip.NextHeader = layers.IPProtocolIPv6Fragment
	frag := []byte{6, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef} // offset 0, M=1
	tcp := []byte{0x9c, 0x46, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x04, 0, 0, 0, 0, 0}
	return serialize(t, append(l2Layers(0, layers.EthernetTypeIPv6), ip, gopacket.Payload(append(frag, tcp...)))...)
}

// icmpErrorFrame: a router's "fragmentation needed" / "packet too big" about
// a segment the VIP sent to the client.
func icmpErrorFrame(t testing.TB, client netip.Addr, cport uint16, vip netip.Addr, vport uint16) []byte {
	t.Helper()
	emb := tcpFrame(t, 0, vip, vport, client, cport, ack)[14:]
	if client.Is4() {
		emb = emb[:20+8]
		ip := ipLayer(router4, vip, layers.IPProtocolICMPv4)
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}
		return serialize(t, append(l2Layers(0, layers.EthernetTypeIPv4), ip.(gopacket.SerializableLayer), icmp, gopacket.Payload(emb))...)
	}
	emb = emb[:40+8]
	ip := ipLayer(router6, vip, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(2, 0)}
	must(t, icmp.SetNetworkLayerForChecksum(ip))
	mtu := []byte{0, 0, 0x05, 0x00}
	return serialize(t, append(l2Layers(0, layers.EthernetTypeIPv6), ip.(gopacket.SerializableLayer), icmp, gopacket.Payload(append(mtu, emb...)))...)
}

// TestProgTooBig: an encapsulated frame over the egress MTU that cannot be
// answered (IPv4 without DF) is dropped and counted, both on the first
// packet to a backend and once the next-hop cache knows the MTU; one that
// just fits goes out. TestProgTooBigAnswered has the packets with DF.
func TestProgTooBig(t *testing.T) {
	r := newRig(t)
	dev := r.ns.MustRun(t, "ip", "-o", "link", "show", "up", "type", "veth")
	name := strings.TrimSuffix(strings.Fields(dev)[1], ":")
	name, _, _ = strings.Cut(name, "@")
	r.ns.MustRun(t, "ip", "link", "set", name, "mtu", "1300")
	sized := func(ipLen int) []byte {
		ip := ipLayer(client4, vipTCP, layers.IPProtocolTCP)
		tcp := &layers.TCP{SrcPort: 43000, DstPort: 80, ACK: true, Window: 1024}
		must(t, tcp.SetNetworkLayerForChecksum(ip))
		return serialize(t, append(l2Layers(0, layers.EthernetTypeIPv4), ip.(gopacket.SerializableLayer), tcp,
			gopacket.Payload(make([]byte, ipLen-40)))...)
	}
	h := flowHash(testHashSeed, client4, vipTCP, 43000, 80, 6)
	tooBig := map[vipdStat]uint64{vipdStatSTAT_DROP_TOO_BIG: 1}
	// Outer IPv4 + UDP + GUE + one alternate (GLB's format: issue 11 made
	// it one hop shorter, so these sizes grew by 4).
	fits := sized(1300 - 20 - 8 - 8 - 4)
	r.check(t, progCase{name: "fib reports it", in: sized(1300), wantCode: xdpDrop, wantStats: tooBig})
	r.check(t, progCase{name: "fits", in: fits, wantCode: xdpTX,
		wantOut:   encapOf(fits, macA, nodeMAC, node4, h, be4a, be4b),
		wantStats: map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_TX: 1}})
	r.check(t, progCase{name: "cache reports it", in: sized(1261), wantCode: xdpDrop, wantStats: tooBig})
}

// laterFragment is a non-first IPv4 fragment (offset 100) src -> dst of
// protocol proto, 24 bytes of data.
func laterFragment(t testing.TB, src, dst netip.Addr, proto layers.IPProtocol) []byte {
	later := ipLayer(src, dst, proto).(*layers.IPv4)
	later.FragOffset = 100
	return serialize(t, append(l2Layers(0, layers.EthernetTypeIPv4), later, gopacket.Payload(make([]byte, 24)))...)
}

// vipCounters reads the rig's per-VIP counters, summed over CPUs.
func (r *rig) vipCounters(t testing.TB) map[netip.Addr][4]Counter {
	t.Helper()
	ncpu, err := ebpf.PossibleCPU()
	must(t, err)
	out := map[netip.Addr][4]Counter{}
	for a, idx := range rigVIPIdx {
		vals := make([]vipdVipCounters, ncpu)
		must(t, r.objs.VipStats.Lookup(idx, &vals))
		var sum [4]Counter
		for _, v := range vals {
			for i := range sum {
				sum[i].Packets += v.C[i].Packets
				sum[i].Bytes += v.C[i].Bytes
			}
		}
		if sum != ([4]Counter{}) {
			out[a] = sum
		}
	}
	return out
}

// TestProgVIPCounters: every verdict that matters is counted for its VIP,
// packets and the bytes of the VIP packet (no L2, no encapsulation):
// encapsulated, delivered locally (local primary, decapsulated), second
// chance (forward, local second chance), loop guard.
func TestProgVIPCounters(t *testing.T) {
	r := newRig(t)
	syn4 := tcpFrame(t, 0, client4, 47000, vipTCP, 80, syn)
	ack4 := tcpFrame(t, 0, client4, 47001, vipTCP, 80, ack)
	local := tcpFrame(t, 0, client4, 47002, vipLocal, 80, syn)
	localAck := tcpFrame(t, 0, client4, 47003, vipLocal, 80, ack)
	nb := tcpFrame(t, 0, client4, 47004, vipNB, 80, ack)
	ipLen := func(f []byte) uint64 { return uint64(len(f) - l2Len(f)) }
	one := func(f []byte) Counter { return Counter{Packets: 1, Bytes: ipLen(f)} }
	for _, c := range []struct {
		name string
		in   []byte
		want map[netip.Addr][4]Counter
	}{
		{"encapsulated", syn4, map[netip.Addr][4]Counter{vipTCP: {0: one(syn4)}}},
		{"local primary", local, map[netip.Addr][4]Counter{vipLocal: {1: one(local)}}},
		{"local second chance", localAck, map[netip.Addr][4]Counter{vipLocal: {0: one(localAck), 2: one(localAck)}}},
		{"decapsulated", gueFrame(dir4, node4, 0, []netip.Addr{be4a}, syn4), map[netip.Addr][4]Counter{vipTCP: {1: one(syn4)}}},
		{"second-chance forward", gueFrame(dir4, node4, 0, []netip.Addr{be4a}, ack4), map[netip.Addr][4]Counter{vipTCP: {2: one(ack4)}}},
		{"loop guard", gueFrame(dir4, node4, 0, nil, nb), map[netip.Addr][4]Counter{vipNB: {3: one(nb)}}},
		{"loop guard, vip unknown here", gueFrame(dir4, node4, 0, nil, tcpFrame(t, 0, client4, 47005, vipNone, 80, ack)), map[netip.Addr][4]Counter{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := r.vipCounters(t)
			r.run(t, r.objs.VipdXdp, c.in)
			got := map[netip.Addr][4]Counter{}
			for a, after := range r.vipCounters(t) {
				var d [4]Counter
				for i := range d {
					d[i] = Counter{after[i].Packets - before[a][i].Packets, after[i].Bytes - before[a][i].Bytes}
				}
				if d != ([4]Counter{}) {
					got[a] = d
				}
			}
			if diff := cmp.Diff(c.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("per-VIP counters (-want +got):\n%s", diff)
			}
		})
	}
}

// cutL4 cuts the IP packet of frame to its IP header (IPv4 without options
// or IPv6 without extensions) and l4 bytes after it, fixing the IP length
// (and IPv4 checksum), then pads the frame with zeros to pad bytes as
// Ethernet does for short frames.
func cutL4(frame []byte, l4, pad int) []byte {
	l := l2Len(frame)
	out := append([]byte(nil), frame...)
	if out[l]>>4 == 4 {
		out = out[:l+20+l4]
		binary.BigEndian.PutUint16(out[l+2:], uint16(20+l4))
		binary.BigEndian.PutUint16(out[l+10:], 0)
		binary.BigEndian.PutUint16(out[l+10:], ipChecksum(out[l:l+20]))
	} else {
		out = out[:l+40+l4]
		binary.BigEndian.PutUint16(out[l+4:], uint16(l4))
	}
	for len(out) < pad {
		out = append(out, 0)
	}
	return out
}

// longIPLength makes frame's IPv4 length claim 10 bytes more than it has.
func longIPLength(frame []byte) []byte {
	out := append([]byte(nil), frame...)
	l := l2Len(out)
	binary.BigEndian.PutUint16(out[l+2:], binary.BigEndian.Uint16(out[l+2:])+10)
	binary.BigEndian.PutUint16(out[l+10:], 0)
	binary.BigEndian.PutUint16(out[l+10:], ipChecksum(out[l:l+20]))
	return out
}
