package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

var (
	glbDir  = netip.MustParseAddr("10.0.0.130")      // a GLB director: in a director prefix, not a member
	glbNet  = netip.MustParsePrefix("10.0.0.128/25") // the director prefix
	stray6  = netip.MustParseAddr("2001:db8::66")    // on the link, not a member
	glbPort = uint16(0x8000 | 0x1234)                // GLB: 0x8000 | hash
)

// setConfig changes the rig's config with fn.
func (r *rig) setConfig(t testing.TB, fn func(*vipdDpConfig)) {
	t.Helper()
	var cfg vipdDpConfig
	must(t, r.objs.Config.Lookup(uint32(0), &cfg))
	fn(&cfg)
	must(t, r.objs.Config.Put(uint32(0), cfg))
}

// addDirectorPrefix lets GUE in from p and sets DP_F_DIRECTORS.
func (r *rig) addDirectorPrefix(t testing.TB, p netip.Prefix) {
	t.Helper()
	must(t, r.objs.Directors.Put(prefixKey(p), uint8(1)))
	r.setConfig(t, func(c *vipdDpConfig) { c.Flags |= 4 })
}

// forwarded is what this node sends on by second chance for a GUE frame
// with the alternates hops whose next_hop was next: GLB's rule, from this
// node to hops[next], next_hop + 1, TTL down, the next hop's MACs.
func forwarded(self netip.Addr, hops []netip.Addr, next uint8, mac []byte, inner []byte) []byte {
	out := gueFrame(self, hops[next], next+1, hops, inner)
	copy(out[0:], mac)
	copy(out[6:], nodeMAC)
	if self.Is4() {
		out[14+8]--
		binary.BigEndian.PutUint16(out[14+10:], 0)
		binary.BigEndian.PutUint16(out[14+10:], ipChecksum(out[14:34]))
	} else {
		out[14+7]--
	}
	return out
}

// TestProgGLBInterop feeds the backend path frames as GitHub GLB's director
// and second-chance module send them, built from GLB's document
// (glbGUE): to the primary with the alternates only, next_hop 0; a
// forwarding server's frame from itself with next_hop incremented. vipd's
// director side is checked against the same builder in TestProgDirector and
// TestProgDirectorLocalSecondChance.
func TestProgGLBInterop(t *testing.T) {
	r := newRig(t)
	r.addDirectorPrefix(t, glbNet)
	synIn := tcpFrame(t, 0, client4, 45000, vipTCP, 80, syn)
	ackIn := tcpFrame(t, 0, client4, 45001, vipTCP, 80, ack)
	glb := func(src netip.Addr, next uint8, hops []netip.Addr, inner []byte) []byte {
		f := gueFrame(src, node4, next, hops, inner)
		binary.BigEndian.PutUint16(f[14+20:], glbPort)
		return f
	}
	fwd := func(f []byte, hops []netip.Addr, next uint8, inner []byte) []byte {
		out := forwarded(node4, hops, next, macA, inner)
		binary.BigEndian.PutUint16(out[14+20:], glbPort)
		if hops[next] == be4b {
			copy(out[0:], macB)
		}
		return out
	}
	decap := map[vipdStat]uint64{vipdStatSTAT_BACKEND_DECAP: 1}
	fwdTX := map[vipdStat]uint64{vipdStatSTAT_BACKEND_FORWARD_TX: 1}
	alt := []netip.Addr{be4a}
	gSyn := glb(glbDir, 0, alt, synIn)
	gAck := glb(glbDir, 0, alt, ackIn)
	// A GLB server (be4b, a member) that forwarded the director's frame:
	// from itself, hops [this node], next_hop 1 = hop_count.
	gLast := glb(be4b, 1, []netip.Addr{node4}, ackIn)
	gNone := glb(glbDir, 0, nil, ackIn)
	cases := []progCase{
		{name: "syn from a GLB director: decapsulated", in: gSyn, wantCode: xdpPass, wantOut: decapOf(gSyn, synIn), wantStats: decap},
		{name: "ack not owned, an alternate left: forwarded to it from this node", in: gAck, wantCode: xdpTX,
			wantOut: fwd(gAck, alt, 0, ackIn), wantStats: fwdTX},
		{name: "last hop (next_hop = hop_count): handled here", in: gLast, wantCode: xdpPass, wantOut: decapOf(gLast, ackIn), wantStats: decap},
		{name: "no alternates: handled here", in: gNone, wantCode: xdpPass, wantOut: decapOf(gNone, ackIn), wantStats: decap},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { r.check(t, c) })
	}

	// GLB's director hashing twice writes three alternates; a node told
	// to accept them (max_hops_rx 3) follows GLB's rule hop by hop.
	r.setConfig(t, func(c *vipdDpConfig) { c.MaxHopsRx = 3 })
	alts := []netip.Addr{be4a, be4b, dir4}
	g3 := glb(glbDir, 0, alts, ackIn)
	// This node as the first alternate: the primary be4a forwarded it
	// here; the next alternate is be4b.
	g3second := glb(be4a, 1, []netip.Addr{node4, be4b, dir4}, ackIn)
	for _, c := range []progCase{
		{name: "three alternates: to the first", in: g3, wantCode: xdpTX, wantOut: fwd(g3, alts, 0, ackIn), wantStats: fwdTX},
		{name: "three alternates, second hop: to the next", in: g3second, wantCode: xdpTX,
			wantOut: fwd(g3second, []netip.Addr{node4, be4b, dir4}, 1, ackIn), wantStats: fwdTX},
	} {
		t.Run(c.name, func(t *testing.T) { r.check(t, c) })
	}
}

// TestProgTrust: the trust boundary of the backend path. GUE is only taken
// from members (and configured director prefixes), with at most the
// alternates a director writes and a next_hop a forwarding member could
// have written, and only forwarded to a member. Each crafted case of issue
// 11 is dropped and counted by its reason.
func TestProgTrust(t *testing.T) {
	r := newRig(t)
	ackIn := tcpFrame(t, 0, client4, 46000, vipTCP, 80, ack)
	synIn := tcpFrame(t, 0, client4, 46001, vipTCP, 80, syn)
	// An inner packet claiming to come from a client it does not.
	spoofed := tcpFrame(t, 0, netip.MustParseAddr("203.0.113.5"), 46002, vipTCP, 80, syn)
	untrusted := map[vipdStat]uint64{vipdStatSTAT_DROP_GUE_UNTRUSTED_SOURCE: 1}
	tooMany := map[vipdStat]uint64{vipdStatSTAT_DROP_GUE_TOO_MANY_HOPS: 1}
	badNext := map[vipdStat]uint64{vipdStatSTAT_DROP_GUE_BAD_NEXT_HOP: 1}
	notMember := map[vipdStat]uint64{vipdStatSTAT_DROP_GUE_HOP_NOT_MEMBER: 1}
	decap := map[vipdStat]uint64{vipdStatSTAT_BACKEND_DECAP: 1}
	lastHop := gueFrame(be4a, node4, 1, []netip.Addr{node4}, ackIn)
	toSelf := gueFrame(dir4, node4, 0, []netip.Addr{node4}, ackIn)
	synStray := gueFrame(dir4, node4, 0, []netip.Addr{stray4}, synIn)
	for _, c := range []progCase{
		{name: "from outside the cluster", in: gueFrame(stray4, node4, 0, []netip.Addr{be4a}, synIn), wantCode: xdpDrop, wantStats: untrusted},
		{name: "from outside, hops [node, other node] (vipd's old layout)", in: gueFrame(stray4, node4, 0, []netip.Addr{node4, be4a}, ackIn),
			wantCode: xdpDrop, wantStats: untrusted},
		{name: "from outside, spoofed inner source", in: gueFrame(stray4, node4, 0, nil, spoofed), wantCode: xdpDrop, wantStats: untrusted},
		{name: "from outside over ipv6", in: gueFrame(stray6, node6, 0, []netip.Addr{be6a}, ackIn), wantCode: xdpDrop, wantStats: untrusted},
		{name: "hop outside the cluster", in: gueFrame(dir4, node4, 0, []netip.Addr{stray4}, ackIn), wantCode: xdpDrop, wantStats: notMember},
		// The alternate is only asked about when it would be used: a SYN
		// is handled here, never forwarded.
		{name: "hop outside the cluster, syn: handled here", in: synStray, wantCode: xdpPass, wantOut: decapOf(synStray, synIn),
			wantStats: decap},
		{name: "two alternates", in: gueFrame(dir4, node4, 0, []netip.Addr{be4a, be4b}, ackIn), wantCode: xdpDrop, wantStats: tooMany},
		{name: "[n1,n3,n1,n3]", in: gueFrame(dir4, node4, 0, []netip.Addr{be4a, be4b, be4a, be4b}, ackIn), wantCode: xdpDrop, wantStats: tooMany},
		{name: "preset next_hop: not from a forward to this node", in: gueFrame(dir4, node4, 1, []netip.Addr{be4a}, ackIn),
			wantCode: xdpDrop, wantStats: badNext},
		{name: "next_hop beyond hop_count", in: gueFrame(dir4, node4, 2, []netip.Addr{be4a}, ackIn), wantCode: xdpDrop, wantStats: badNext},
		{name: "a member's forward: handled here", in: lastHop, wantCode: xdpPass, wantOut: decapOf(lastHop, ackIn), wantStats: decap},
		{name: "alternate is this node: handled here, not sent to itself", in: toSelf, wantCode: xdpPass,
			wantOut: decapOf(toSelf, ackIn), wantStats: decap},
	} {
		t.Run(c.name, func(t *testing.T) { r.check(t, c) })
	}

	// Directors that are not members: GUE from them, never a preset
	// next_hop, never as a hop.
	r.addDirectorPrefix(t, glbNet)
	fromGLB := gueFrame(glbDir, node4, 0, []netip.Addr{be4a}, synIn)
	for _, c := range []progCase{
		{name: "from a director prefix", in: fromGLB, wantCode: xdpPass, wantOut: decapOf(fromGLB, synIn), wantStats: decap},
		{name: "preset next_hop from a director prefix", in: gueFrame(glbDir, node4, 1, []netip.Addr{node4}, ackIn),
			wantCode: xdpDrop, wantStats: badNext},
		{name: "a director prefix as a hop", in: gueFrame(dir4, node4, 0, []netip.Addr{glbDir}, ackIn), wantCode: xdpDrop, wantStats: notMember},
		{name: "outside the prefix still", in: gueFrame(stray4, node4, 0, []netip.Addr{be4a}, synIn), wantCode: xdpDrop, wantStats: untrusted},
	} {
		t.Run(c.name, func(t *testing.T) { r.check(t, c) })
	}

	// With the boundary off (no members known) everything is believed:
	// what the loader warns about.
	r.setConfig(t, func(c *vipdDpConfig) { c.Flags &^= 2 | 4 })
	open := gueFrame(stray4, node4, 0, []netip.Addr{be4a}, synIn)
	r.check(t, progCase{name: "boundary off", in: open, wantCode: xdpPass, wantOut: decapOf(open, synIn), wantStats: decap})
}
