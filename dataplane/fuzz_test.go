package dataplane

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
)

// seedFrames are valid frames of every kind the program handles, the
// starting points for mutation.
func seedFrames(t testing.TB) [][]byte {
	hops := []netip.Addr{be4a}
	syn4 := tcpFrame(t, 0, client4, 40000, vipTCP, 80, syn)
	ack4 := tcpFrame(t, 0, client4, 40001, vipTCP, 80, ack)
	f1, f2 := ipv4Fragments(t)
	return [][]byte{
		syn4, ack4,
		tcpFrame(t, 1, client4, 40002, vipTCP, 80, syn),
		tcpFrame(t, 2, client4, 40003, vipTCP, 80, ack),
		tcpFrame(t, 0, client6, 40004, vip6TCP, 443, syn),
		tcpFrame(t, 0, client6, 40005, vip6U, 80, syn),
		tcpFrame(t, 0, client4, 40006, vipLocal, 80, syn),
		tcpFrame(t, 0, client4, 40013, vipLocal, 80, ack),
		tcpFrame(t, 0, client4, 40014, vipLocal, 80, rst),
		tcpFrame(t, 0, client6, 40015, vipL6, 80, ack),
		tcpFrame(t, 0, client4, 40016, vipSolo, 80, ack),
		udpFrame(t, client4, 5354, vipLocal, 53, []byte("query")),
		tcpFrame(t, 0, client4, 40007, vipNB, 80, syn),
		tcpFrame(t, 0, client4, 40008, vipNN, 80, syn),
		tcpFrame(t, 0, client4, 40009, vipSplit, 80, ack),
		tcpFrame(t, 0, client4, 40010, vipNone, 80, syn),
		udpFrame(t, client4, 5353, vipTCP, 53, []byte("query")),
		ipOptionsFrame(t), ipv6ExtFrame(t), f1, f2, ipv6Fragment(t), ipv4LaterFragmentTCP(t),
		icmpErrorFrame(t, client4, 50000, vipSplit, 80),
		icmpErrorFrame(t, client6, 50001, vip6TCP, 443),
		arpFrame(t),
		gueFrame(dir4, node4, 0, hops, syn4),
		gueFrame(dir4, node4, 0, hops, ack4),
		gueFrame(be4a, node4, 1, []netip.Addr{node4}, ack4),
		gueFrame(dir4, node4, 0, nil, ack4),
		gueFrame(dir4, node4, 0, hops, tcpFrame(t, 0, client6, 40011, vip6TCP, 443, ack)),
		gueFrame(be6b, node6, 0, []netip.Addr{be6a}, ack4),
		gueFrame(dir4, node4, 0, hops, tcpFrame(t, 0, client4, 40012, vipNone, 80, syn)),
		gueFrame(stray4, node4, 0, hops, ack4),
		gueFrame(dir4, node4, 0, []netip.Addr{be4a, be4b}, ack4),
		probeFrame(dir4, node4, 0xC555, testGUEPort, probeRequest, 0, 40),
		probeFrame(be6a, node6, 0xC556, testGUEPort, probeRequest, 4000, 0),
		probeFrame(dir4, node4, 0xC557, testGUEPort, probeReply, 0, 0),
		sizedTCP(t, client4, vipTCP, 1400, true),
	}
}

var txDestinations = map[netip.Addr]bool{be4a: true, be4b: true, be6a: true, be6b: true}

// checkInvariants: the kernel accepted the run, the verdict is PASS, DROP
// or TX, a TX frame is well-formed GUE to a configured backend (or, for a
// second chance, to a member its GUE header named, from this node), a
// probe's answer, or a "too big" answer to the client; and a PASS either
// leaves the frame alone or is a decapsulation of GUE sent to us or a
// well-formed GUE frame for an unresolved neighbour. A director's frame
// starts at next_hop 0, except the local primary's second chance
// (checkDirectorHops).
func checkInvariants(t *testing.T, in []byte, code uint32, out []byte) {
	t.Helper()
	switch code {
	case xdpDrop:
	case xdpTX:
		switch {
		case isGUEToNode(in) && isProbeFrame(out):
			checkProbeAnswer(t, in, out)
		case isGUEToNode(in):
			// A second chance goes to a member the header names,
			// from this node (GLB).
			dst, nh, hops, _ := checkGUEFrame(t, out, netip.Addr{}, false)
			if !slices.Contains(rigMembers, dst) || dst == node4 || dst == node6 {
				t.Errorf("second chance to %v, not another member", dst)
			}
			if nh < 1 || hops[nh-1] != dst {
				t.Errorf("second chance to %v with next_hop %d, hops %v", dst, nh, hops)
			}
			if src := outerSource(out); src != node4 && src != node6 {
				t.Errorf("second chance from %v, not from this node", src)
			}
		case isTooBigAnswer(out):
			checkTooBigAnswer(t, in, out)
		default:
			dst, nh, hops, inner := checkGUEFrame(t, out, netip.Addr{}, true)
			if !txDestinations[dst] {
				t.Errorf("TX to %v, not a configured backend", dst)
			}
			checkDirectorHops(t, dst, nh, hops, inner)
		}
	case xdpPass:
		if bytes.Equal(in, out) {
			return
		}
		if l := l2Len(out); l < len(out) && bytes.HasSuffix(in, out[l:]) && isGUEToNode(in) {
			return // decapsulated
		}
		dst, nh, hops, inner := checkGUEFrame(t, out, netip.Addr{}, !isGUEToNode(in))
		if !isGUEToNode(in) {
			if dst != be4nn {
				t.Errorf("passed a rewritten frame that is neither a decapsulation nor an encapsulation to the unresolved neighbour:\n in % x\nout % x", in, out)
			}
			checkDirectorHops(t, dst, nh, hops, inner)
		}
	default:
		t.Errorf("verdict %d (%s), want PASS, DROP or TX", code, verdictNames[code])
	}
	if t.Failed() {
		t.Logf("input % x", in)
	}
}

// outerSource is the outer IP source of a frame.
func outerSource(f []byte) netip.Addr {
	l := l2Len(f)
	if f[l]>>4 == 4 {
		return netip.AddrFrom4([4]byte(f[l+12 : l+16]))
	}
	return netip.AddrFrom16([16]byte(f[l+8 : l+24]))
}

// checkDirectorHops: a director's encapsulation is addressed to the row's
// primary with next_hop 0 (GLB). Only the local primary's second chance
// starts at next_hop 1, and then exactly as a second chance on this node
// would have sent it: to the secondary with hops [secondary], carrying an
// unfragmented TCP segment without SYN.
func checkDirectorHops(t *testing.T, dst netip.Addr, nextHop int, hops []netip.Addr, inner []byte) {
	t.Helper()
	switch nextHop {
	case 0:
		if len(hops) > 1 {
			t.Errorf("director frame with %d alternates %v: a director writes at most one", len(hops), hops)
		}
	case 1:
		if len(hops) != 1 || hops[0] != dst {
			t.Errorf("director frame with next_hop 1 to %v, hops %v: want [secondary]", dst, hops)
		}
		if flags, ok := innerTCPFlags(inner); !ok || flags&0x02 != 0 {
			t.Errorf("director frame with next_hop 1 carries no unfragmented TCP segment without SYN (flags %#x, tcp %v)", flags, ok)
		}
	default:
		t.Errorf("director frame with next_hop %d", nextHop)
	}
}

// innerTCPFlags reads the TCP flags of an unfragmented TCP segment in an IP
// packet, skipping IPv6 extension headers the way the program does.
func innerTCPFlags(ip []byte) (byte, bool) {
	if len(ip) < 20 {
		return 0, false
	}
	var off int
	var proto byte
	switch ip[0] >> 4 {
	case 4:
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return 0, false
		}
		off, proto = int(ip[0]&0x0f)*4, ip[9]
	case 6:
		if len(ip) < 40 {
			return 0, false
		}
		off, proto = 40, ip[6]
		for range 4 {
			if proto != 0 && proto != 43 && proto != 60 && proto != 51 {
				break // a fragment header (44) is refused below
			}
			if len(ip) < off+2 {
				return 0, false
			}
			next, l := ip[off], int(ip[off+1])
			if proto == 51 {
				off += (l + 2) * 4
			} else {
				off += (l + 1) * 8
			}
			proto = next
		}
	default:
		return 0, false
	}
	if proto != 6 || len(ip) < off+14 {
		return 0, false
	}
	return ip[off+13], true
}

func isGUEToNode(f []byte) bool {
	l := l2Len(f)
	if len(f) < l+48 {
		return false
	}
	switch f[l] >> 4 {
	case 4:
		ihl := int(f[l]&0x0f) * 4
		return len(f) >= l+ihl+8 && f[l+9] == 17 && netip.AddrFrom4([4]byte(f[l+16:l+20])) == node4 &&
			binary.BigEndian.Uint16(f[l+ihl+2:]) == testGUEPort
	case 6:
		return f[l+6] == 17 && netip.AddrFrom16([16]byte(f[l+24:l+40])) == node6 &&
			binary.BigEndian.Uint16(f[l+42:]) == testGUEPort
	}
	return false
}

// runChecked runs one frame; frames the kernel's test runner itself refuses
// (shorter than Ethernet, longer than a page) are skipped.
func (r *rig) runChecked(t *testing.T, prog *ebpf.Program, in []byte) {
	t.Helper()
	if len(in) < 14 || len(in) > 1514 {
		return
	}
	code, out := r.run(t, prog, in)
	checkInvariants(t, in, code, out)
}

func FuzzXDP(f *testing.F) {
	r := newRig(f)
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		r.runChecked(t, r.objs.VipdXdp, frame)
	})
}

// TestXDPRandomFrames runs 20000 deterministic random and mutated frames
// through the program (the fuzzer's invariants, in every go test run).
func TestXDPRandomFrames(t *testing.T) {
	r := newRig(t)
	seeds := seedFrames(t)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		var in []byte
		switch i % 4 {
		case 0: // random bytes behind a plausible Ethernet header
			in = make([]byte, 14+rng.IntN(200))
			for j := range in {
				in[j] = byte(rng.Uint32())
			}
			ets := []uint16{0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806}
			binary.BigEndian.PutUint16(in[12:], ets[rng.IntN(len(ets))])
		default: // a seed with a few bytes changed and maybe truncated
			s := seeds[rng.IntN(len(seeds))]
			in = append([]byte(nil), s...)
			for range 1 + rng.IntN(4) {
				in[rng.IntN(len(in))] = byte(rng.Uint32())
			}
			if rng.IntN(4) == 0 {
				in = in[:14+rng.IntN(len(in)-13)]
			}
		}
		r.runChecked(t, r.objs.VipdXdp, in)
		if t.Failed() {
			t.Fatalf("frame %d broke an invariant", i)
		}
	}
}
