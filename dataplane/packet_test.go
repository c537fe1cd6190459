package dataplane

import (
	"encoding/binary"
	"math/bits"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Packet building and checking helpers for the prog.Run tests, the fuzzer
// and the benchmarks.

const (
	testGUEPort  = 19523
	testHashSeed = 0x5eed1234
)

var (
	clientMAC = net.HardwareAddr{0x02, 0xc1, 0, 0, 0, 0x01}
	nodeMAC   = net.HardwareAddr{0x02, 0x0d, 0, 0, 0, 0x01} // the rig gives its veth this MAC
)

// hashWord and flowHash mirror flow_hash in bpf/vipd.c.
func hashWord(h, w uint32) uint32 {
	h ^= w * 0xcc9e2d51
	return bits.RotateLeft32(h, 13)*5 + 0xe6546b64
}

func addrWords(a netip.Addr) []uint32 {
	if a.Is4() {
		b := a.As4()
		return []uint32{binary.LittleEndian.Uint32(b[:])}
	}
	b := a.As16()
	return []uint32{
		binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:]),
		binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:]),
	}
}

// fold XORs an address's 32-bit words (as loaded on a little-endian CPU).
func fold(a netip.Addr) uint32 {
	var f uint32
	for _, w := range addrWords(a) {
		f ^= w
	}
	return f
}

// flowHash is the program's flow hash of src:sport -> dst:dport. Fragments
// hash with both ports 0.
func flowHash(seed uint32, src, dst netip.Addr, sport, dport uint16, proto uint8) uint32 {
	h := hashWord(seed, fold(src))
	h = hashWord(h, fold(dst))
	var p [4]byte
	binary.BigEndian.PutUint16(p[0:], sport)
	binary.BigEndian.PutUint16(p[2:], dport)
	h = hashWord(h, binary.LittleEndian.Uint32(p[:]))
	h = hashWord(h, uint32(proto))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// outerSport is the GUE source port the program derives from a flow hash.
func outerSport(h uint32) uint16 { return 0xC000 | uint16((h>>16)&0x3FFF) }

// vipFilterBit mirrors vip_bits: the vip_filter word of an address and the
// shift of its slot's two bits.
func vipFilterBit(a netip.Addr) (word uint32, shift uint) {
	f := fold(a)
	slot := (f ^ (f >> 16)) & 0xffff
	return slot >> 5, uint(slot&31) * 2
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serializing: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// vlanTags returns the L2 layers for an untagged (0), 802.1Q (1) or
// 802.1ad + 802.1Q (2) frame carrying ethertype et.
func l2Layers(tags int, et layers.EthernetType) []gopacket.SerializableLayer {
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: nodeMAC, EthernetType: et}
	switch tags {
	case 1:
		eth.EthernetType = layers.EthernetTypeDot1Q
		return []gopacket.SerializableLayer{eth, &layers.Dot1Q{VLANIdentifier: 100, Type: et}}
	case 2:
		eth.EthernetType = layers.EthernetTypeQinQ
		return []gopacket.SerializableLayer{eth,
			&layers.Dot1Q{VLANIdentifier: 200, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 100, Type: et}}
	}
	return []gopacket.SerializableLayer{eth}
}

func etherType(a netip.Addr) layers.EthernetType {
	if a.Is4() {
		return layers.EthernetTypeIPv4
	}
	return layers.EthernetTypeIPv6
}

// ipLayer returns an IPv4 or IPv6 header for src -> dst carrying proto.
func ipLayer(src, dst netip.Addr, proto layers.IPProtocol) gopacket.NetworkLayer {
	if src.Is4() {
		return &layers.IPv4{Version: 4, TTL: 61, Id: 0x1234, Protocol: proto,
			SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	}
	return &layers.IPv6{Version: 6, HopLimit: 61, NextHeader: proto,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

type tcpFlags struct{ syn, ack, rst bool }

var (
	syn = tcpFlags{syn: true}
	ack = tcpFlags{ack: true}
	rst = tcpFlags{rst: true, ack: true}
)

// tcpFrame is a TCP segment src:sport -> dst:dport with tags VLAN tags.
func tcpFrame(t testing.TB, tags int, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, fl tcpFlags) []byte {
	t.Helper()
	ip := ipLayer(src, dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport),
		Seq: 1000, Ack: 77, SYN: fl.syn, ACK: fl.ack, RST: fl.rst, Window: 65535}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ls := append(l2Layers(tags, etherType(src)), ip.(gopacket.SerializableLayer), tcp,
		gopacket.Payload("hello"))
	return serialize(t, ls...)
}

func udpFrame(t testing.TB, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, payload []byte) []byte {
	t.Helper()
	ip := ipLayer(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ls := append(l2Layers(0, etherType(src)), ip.(gopacket.SerializableLayer), udp, gopacket.Payload(payload))
	return serialize(t, ls...)
}

// l2Len is the length of a frame's Ethernet header and VLAN tags.
func l2Len(frame []byte) int {
	off := 12
	for range 3 {
		et := binary.BigEndian.Uint16(frame[off:])
		if et != 0x8100 && et != 0x88a8 {
			break
		}
		off += 4
	}
	return off + 2
}

// glbGUE is the GUE header with GLB's private data, built byte by byte from
// GLB's docs/development/gue-header.md (independently of bpf/encap.h):
//
//	byte 0    version (2 bits) 0 | C (1 bit) 0 | Hlen (5 bits): the 32-bit
//	          words after the first one, i.e. 1 (private type, next hop
//	          idx, hop count) + the hop words
//	byte 1    Proto/ctype: 4 for an inner IPv4 packet, 41 for IPv6
//	byte 2-3  Flags 0
//	byte 4-5  Private data type 0
//	byte 6    Next hop idx: the alternate to try next, 0 from a director
//	byte 7    Hop count: the number of addresses that follow
//	then      the hops: the alternates only, not the outer destination;
//	          IPv4 addresses as GLB's document has them, 16-byte IPv6
//	          addresses for an IPv6 underlay (vipd's extension, same rules)
func glbGUE(inner4 bool, nextHop uint8, hops ...netip.Addr) []byte {
	hopWords := 1
	if len(hops) > 0 && hops[0].Is6() {
		hopWords = 4
	}
	b := []byte{byte(1 + hopWords*len(hops)), 41, 0, 0, 0, 0, nextHop, byte(len(hops))}
	if inner4 {
		b[1] = 4
	}
	for _, h := range hops {
		b = append(b, h.AsSlice()...)
	}
	return b
}

// outerFrame builds Ethernet (tags kept from l2) + outer IP + UDP (checksum
// 0) + GUE + inner, the way the program writes it: IPv4 with DF, TTL 64, id
// 0, a correct header checksum; IPv6 with the flow label from the hash.
func outerFrame(l2 []byte, dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport uint16, hash uint32,
	gue, inner []byte) []byte {
	out := append([]byte(nil), l2...)
	copy(out[0:], dstMAC)
	copy(out[6:], srcMAC)
	udpLen := 8 + len(gue) + len(inner)
	if src.Is4() {
		binary.BigEndian.PutUint16(out[len(out)-2:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
		binary.BigEndian.PutUint16(ip[6:], 0x4000)
		ip[8] = 64
		ip[9] = 17
		copy(ip[12:], src.AsSlice())
		copy(ip[16:], dst.AsSlice())
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		out = append(out, ip...)
	} else {
		binary.BigEndian.PutUint16(out[len(out)-2:], 0x86dd)
		ip := make([]byte, 40)
		binary.BigEndian.PutUint32(ip[0:], 0x60000000|hash&0xFFFFF)
		binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
		ip[6] = 17
		ip[7] = 64
		copy(ip[8:], src.AsSlice())
		copy(ip[24:], dst.AsSlice())
		out = append(out, ip...)
	}
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], testGUEPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	out = append(out, udp...)
	out = append(out, gue...)
	return append(out, inner...)
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = (sum & 0xffff) + sum>>16
	}
	return ^uint16(sum)
}

// encapOf is what a director sends for frame, in GLB's format: to dst (the
// row's primary), the alternates (the secondary) in the hop list, next_hop
// 0, given the flow hash.
func encapOf(frame []byte, dstMAC, srcMAC net.HardwareAddr, src netip.Addr, hash uint32, dst netip.Addr, alts ...netip.Addr) []byte {
	return encapNextOf(frame, dstMAC, srcMAC, src, hash, 0, dst, alts...)
}

// encapNextOf is encapOf with next_hop set: what a node that forwards a
// packet by second chance sends (GLB: from itself, to hops[next_hop - 1],
// next_hop already incremented). A director whose row's primary is itself
// sends a flow it does not own this way: to the secondary, hops
// [secondary], next_hop 1.
func encapNextOf(frame []byte, dstMAC, srcMAC net.HardwareAddr, src netip.Addr, hash uint32, nextHop uint8, dst netip.Addr, hops ...netip.Addr) []byte {
	l2 := l2Len(frame)
	inner := frame[l2:]
	inner4 := inner[0]>>4 == 4
	return outerFrame(frame[:l2], dstMAC, srcMAC, src, dst, outerSport(hash), hash,
		glbGUE(inner4, nextHop, hops...), inner)
}

// gueFrame is a GUE packet from src to this node dst with the hop list
// hops (GLB: the alternates) and next_hop, as a director or a forwarding
// node sends it (untagged, hash 0 for the port and flow label).
func gueFrame(src, dst netip.Addr, nextHop uint8, hops []netip.Addr, innerFrame []byte) []byte {
	inner := innerFrame[l2Len(innerFrame):]
	l2 := make([]byte, 14)
	return outerFrame(l2, nodeMAC, clientMAC, src, dst, 0xC123, 0,
		glbGUE(inner[0]>>4 == 4, nextHop, hops...), inner)
}

// decapOf is what the backend passes up for a GUE frame: the L2 header with
// the inner ethertype, then the inner packet.
func decapOf(gue []byte, innerFrame []byte) []byte {
	inner := innerFrame[l2Len(innerFrame):]
	out := append([]byte(nil), gue[:14]...)
	if inner[0]>>4 == 4 {
		binary.BigEndian.PutUint16(out[12:], 0x0800)
	} else {
		binary.BigEndian.PutUint16(out[12:], 0x86dd)
	}
	return append(out, inner...)
}

// checkGUE decodes a TX frame with gopacket and checks every outer header
// field the program writes, plus the IPv4 header checksum, and GLB's rules
// for the hop list. It returns the outer destination, next_hop, hops (the
// alternates) and the inner packet. An invalid wantSrc
// skips the source check.
func checkGUE(t testing.TB, frame []byte, wantSrc netip.Addr) (dst netip.Addr, nextHop int, hops []netip.Addr, inner []byte) {
	t.Helper()
	return checkGUEFrame(t, frame, wantSrc, true)
}

// checkGUEFrame is checkGUE; director false skips the fields a director
// writes but a second-chance hop keeps (TTL, DF).
func checkGUEFrame(t testing.TB, frame []byte, wantSrc netip.Addr, director bool) (dst netip.Addr, nextHop int, hops []netip.Addr, inner []byte) {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil && p.Layer(layers.LayerTypeUDP) == nil {
		// gopacket guesses at what the UDP payload is (DNS, DHCPv6 by
		// port): only failures up to the outer UDP header count.
		t.Fatalf("decoding TX frame: %v", el.Error())
	}
	var udp *layers.UDP
	if l, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		if director && (l.Flags&layers.IPv4DontFragment == 0 || l.TTL != 64 || l.IHL != 5) || l.Protocol != layers.IPProtocolUDP {
			t.Errorf("outer IPv4: flags %v ttl %d proto %v ihl %d", l.Flags, l.TTL, l.Protocol, l.IHL)
		}
		if int(l.Length) != len(l.Contents)+len(l.Payload) {
			t.Errorf("outer IPv4 length %d, header+payload %d", l.Length, len(l.Contents)+len(l.Payload))
		}
		if ipChecksum(l.Contents) != 0 {
			t.Errorf("outer IPv4 header checksum %#04x does not verify", l.Checksum)
		}
		src, _ := netip.AddrFromSlice(l.SrcIP)
		if wantSrc.IsValid() && src != wantSrc {
			t.Errorf("outer source %v, want %v", src, wantSrc)
		}
		dst, _ = netip.AddrFromSlice(l.DstIP)
	} else if l, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		if director && l.HopLimit != 64 || l.NextHeader != layers.IPProtocolUDP || int(l.Length) != len(l.Payload) {
			t.Errorf("outer IPv6: hop limit %d next %v length %d payload %d", l.HopLimit, l.NextHeader, l.Length, len(l.Payload))
		}
		src, _ := netip.AddrFromSlice(l.SrcIP)
		if wantSrc.IsValid() && src != wantSrc {
			t.Errorf("outer source %v, want %v", src, wantSrc)
		}
		dst, _ = netip.AddrFromSlice(l.DstIP)
	} else {
		t.Fatalf("TX frame has no outer IP: %v", p)
	}
	udp, _ = p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp == nil {
		t.Fatalf("TX frame has no UDP: %v", p)
		return
	}
	if udp.DstPort != testGUEPort || director && udp.SrcPort < 0xC000 || udp.Checksum != 0 || int(udp.Length) != 8+len(udp.Payload) {
		t.Errorf("outer UDP: %d -> %d checksum %#x length %d payload %d", udp.SrcPort, udp.DstPort, udp.Checksum, udp.Length, len(udp.Payload))
	}
	g := udp.Payload
	if len(g) < 8 {
		t.Fatalf("GUE header truncated: % x", g)
	}
	hsize := 4
	if dst.Is6() {
		hsize = 16
	}
	hlen := int(g[0] & 0x1f)
	n := int(g[7])
	// GLB: next_hop <= hop_count (equal once the alternates are used up).
	if g[0]&0xe0 != 0 || (g[1] != 4 && g[1] != 41) || g[4] != 0 || g[5] != 0 || hlen*4 != 4+n*hsize || int(g[6]) > n {
		t.Fatalf("bad GUE header % x", g[:8])
	}
	if len(g) < 4+hlen*4 {
		t.Fatalf("GUE hops truncated: % x", g)
	}
	for i := range n {
		a, _ := netip.AddrFromSlice(g[8+i*hsize : 8+(i+1)*hsize])
		hops = append(hops, a)
	}
	// GLB: the outer destination is not among the alternates still to
	// try; after a forward it is the alternate just used.
	if g[6] > 0 && hops[g[6]-1] != dst {
		t.Errorf("outer destination %v is not hops[next_hop-1=%d] = %v", dst, g[6]-1, hops[g[6]-1])
	}
	for _, h := range hops[g[6]:] {
		if h == dst {
			t.Errorf("outer destination %v is among the alternates still to try %v", dst, hops[g[6]:])
		}
	}
	inner = g[4+hlen*4:]
	if (g[1] == 4) != (inner[0]>>4 == 4) {
		t.Errorf("GUE proto %d, inner version %d", g[1], inner[0]>>4)
	}
	return dst, int(g[6]), hops, inner
}
