package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// sizedTCP is a TCP ACK src:43000 -> dst:80 (dst:443 for vip6TCP) whose IP
// packet is ipLen bytes, with DF when df (IPv4; IPv6 never fragments on
// the way).
func sizedTCP(t testing.TB, src, dst netip.Addr, ipLen int, df bool) []byte {
	t.Helper()
	return sizedTCPTagged(t, 0, src, dst, ipLen, df)
}

func sizedTCPTagged(t testing.TB, tags int, src, dst netip.Addr, ipLen int, df bool) []byte {
	t.Helper()
	ip := ipLayer(src, dst, layers.IPProtocolTCP)
	hdr := 20 + 20
	if v4, ok := ip.(*layers.IPv4); ok && df {
		v4.Flags = layers.IPv4DontFragment
	}
	if src.Is6() {
		hdr = 40 + 20
	}
	dport := layers.TCPPort(80)
	if dst == vip6TCP {
		dport = 443
	}
	tcp := &layers.TCP{SrcPort: 43000, DstPort: dport, ACK: true, Window: 1024}
	must(t, tcp.SetNetworkLayerForChecksum(ip))
	return serialize(t, append(l2Layers(tags, etherType(src)), ip.(gopacket.SerializableLayer), tcp,
		gopacket.Payload(bytes.Repeat([]byte{0xab}, ipLen-hdr)))...)
}

// wantTooBig is the answer to frame a node must send when the frame would
// exceed the path MTU once encapsulated, written from RFC 792 / RFC 1191
// (type 3 code 4, the next-hop MTU in the low 16 bits of the second word)
// and RFC 4443 (type 2, the MTU in the second word, a pseudo-header in the
// checksum), with the choices vipd makes: from the address the client sent
// to, TTL 64, the MACs swapped back to the router (VLAN tags kept), and the
// first 128 bytes of the client's packet quoted.
func wantTooBig(frame []byte, mtu uint32) []byte {
	l2 := l2Len(frame)
	inner := frame[l2:]
	out := append([]byte(nil), frame[:l2]...)
	copy(out[0:6], frame[6:12])
	copy(out[6:12], frame[0:6])
	quote := inner[:128]
	if inner[0]>>4 == 4 {
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 20+8+128)
		ip[8], ip[9] = 64, 1
		copy(ip[12:16], inner[16:20])
		copy(ip[16:20], inner[12:16])
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		icmp := []byte{3, 4, 0, 0, 0, 0, byte(mtu >> 8), byte(mtu)}
		msg := append(icmp, quote...)
		binary.BigEndian.PutUint16(msg[2:], ipChecksum(msg))
		return append(append(out, ip...), msg...)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 8+128)
	ip[6], ip[7] = 58, 64
	copy(ip[8:24], inner[24:40])
	copy(ip[24:40], inner[8:24])
	icmp := []byte{2, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(icmp[4:], mtu)
	msg := append(icmp, quote...)
	pseudo := append(append(append([]byte(nil), ip[8:40]...), 0, 0, 0, byte(len(msg))), 0, 0, 0, 58)
	binary.BigEndian.PutUint16(msg[2:], ipChecksum(append(pseudo, msg...)))
	return append(append(out, ip...), msg...)
}

// isTooBigAnswer says whether a frame is an ICMP "fragmentation needed" or
// ICMPv6 "packet too big".
func isTooBigAnswer(f []byte) bool {
	l := l2Len(f)
	if len(f) < l+48 {
		return false
	}
	if f[l]>>4 == 4 {
		return f[l+9] == 1 && f[l+20] == 3 && f[l+21] == 4
	}
	return f[l+6] == 58 && f[l+40] == 2
}

// checkTooBigAnswer: out is exactly the answer to in, for the MTU it names
// (at least IPv4's minimum, at most the rig's link MTU).
func checkTooBigAnswer(t *testing.T, in, out []byte) {
	t.Helper()
	l := l2Len(out)
	mtu := uint32(binary.BigEndian.Uint16(out[l+26:]))
	if out[l]>>4 == 6 {
		mtu = binary.BigEndian.Uint32(out[l+44:])
	}
	if mtu < 68 || mtu > 1500 {
		t.Errorf("too-big answer with MTU %d", mtu)
	}
	if len(in)-l2Len(in) < 128 {
		t.Errorf("too-big answer to a %d-byte packet", len(in)-l2Len(in))
		return
	}
	if want := wantTooBig(in, mtu); !bytes.Equal(out, want) {
		t.Errorf("too-big answer differs:\n got % x\nwant % x", out, want)
	}
}

// TestProgTooBigAnswered: a packet too big for the path once encapsulated
// is answered, not dropped: ICMP "fragmentation needed" (IPv4 with DF) or
// ICMPv6 "packet too big", carrying the path MTU less this packet's
// encapsulation, back to the client's router; at most icmp_rate a second
// per CPU.
func TestProgTooBigAnswered(t *testing.T) {
	r := newRig(t)
	setRigMTU(t, r, 1300)
	answered := map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_ICMP_TOO_BIG: 1}
	tooBig := map[vipdStat]uint64{vipdStatSTAT_DROP_TOO_BIG: 1}
	// Outer headers: IPv4 underlay 20 + 8 + 8 + 4 (one alternate); IPv6
	// underlay 40 + 8 + 8 + 16.
	v4 := sizedTCP(t, client4, vipTCP, 1261, true)
	v6over4 := sizedTCP(t, client6, vip6TCP, 1261, false)
	v6over6 := sizedTCP(t, client6, vip6U, 1300-72+1, false)
	tagged := sizedTCPTagged(t, 2, client4, vipTCP, 1300, true)
	// An ICMP error is never answered with one.
	bigICMP := icmpErrorFrame(t, client4, 44000, vipTCP, 80)
	bigICMP = append(bigICMP, make([]byte, 1300)...)
	binary.BigEndian.PutUint16(bigICMP[14+2:], uint16(len(bigICMP)-14))
	bigICMP[14+6] |= 0x40 // DF
	binary.BigEndian.PutUint16(bigICMP[14+10:], 0)
	binary.BigEndian.PutUint16(bigICMP[14+10:], ipChecksum(bigICMP[14:34]))
	fits := sizedTCP(t, client4, vipTCP, 1260, true)
	h := flowHash(testHashSeed, client4, vipTCP, 43000, 80, 6)

	for _, c := range []progCase{
		{name: "ipv4 with DF: frag-needed, MTU 1260", in: v4, wantCode: xdpTX, wantStats: answered, wantOut: wantTooBig(v4, 1260)},
		{name: "just fits", in: fits, wantCode: xdpTX, wantStats: map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_TX: 1},
			wantOut: encapOf(fits, macA, nodeMAC, node4, h, be4a, be4b)},
		{name: "ipv6 over ipv4: packet too big, MTU 1260", in: v6over4, wantCode: xdpTX, wantStats: answered,
			wantOut: wantTooBig(v6over4, 1260)},
		{name: "ipv6 underlay: packet too big, MTU 1228", in: v6over6, wantCode: xdpTX, wantStats: answered,
			wantOut: wantTooBig(v6over6, 1228)},
		{name: "QinQ tags kept", in: tagged, wantCode: xdpTX, wantStats: answered, wantOut: wantTooBig(tagged, 1260)},
		{name: "an icmp error is not answered", in: bigICMP, wantCode: xdpDrop,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_DROP_TOO_BIG: 1, vipdStatSTAT_DIRECTOR_ICMP: 1}},
		{name: "ipv4 without DF: dropped", in: sizedTCP(t, client4, vipTCP, 1261, false), wantCode: xdpDrop, wantStats: tooBig},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := r.check(t, c)
			if c.wantCode == xdpTX && isTooBigAnswer(out) {
				// What a client's stack would decode.
				p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
				if el := p.ErrorLayer(); el != nil {
					t.Errorf("answer does not decode: %v", el.Error())
				}
				checkTooBigAnswer(t, c.in, out)
			}
		})
	}

	// The rate limit: one answer a second on a CPU, then drops.
	var cfg vipdDpConfig
	must(t, r.objs.Config.Lookup(uint32(0), &cfg))
	cfg.IcmpRate = 1
	must(t, r.objs.Config.Put(uint32(0), cfg))
	before := r.stats(t)
	must(t, r.ns.Do(func() error {
		// One CPU, one bucket (Do has locked the thread).
		var one, all unix.CPUSet
		if err := unix.SchedGetaffinity(0, &all); err != nil {
			return err
		}
		for cpu := 0; cpu < 1024; cpu++ {
			if all.IsSet(cpu) {
				one.Set(cpu)
				break
			}
		}
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			return err
		}
		defer func() { _ = unix.SchedSetaffinity(0, &all) }()
		for range 4 {
			if _, _, err := r.runRaw(r.objs.VipdXdp, v4); err != nil {
				return err
			}
		}
		return nil
	}))
	// The bucket holds one second's worth, one token at this rate, and
	// refills far slower than four runs take.
	want := map[vipdStat]uint64{vipdStatSTAT_DIRECTOR_ICMP_TOO_BIG: 1, vipdStatSTAT_DROP_TOO_BIG_RATELIMITED: 3}
	if diff := cmp.Diff(want, statDelta(before, r.stats(t))); diff != "" {
		t.Errorf("4 answers in a row at icmp_rate 1, counters (-want +got):\n%s", diff)
	}
}

// setRigMTU sets the MTU of the rig's veth.
func setRigMTU(t *testing.T, r *rig, mtu int) {
	t.Helper()
	r.ns.MustRun(t, "ip", "link", "set", r.dev, "mtu", strconv.Itoa(mtu))
}
