package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// probeBody is a data-path probe as probe.go documents it: the GUE base
// header with the C bit and control type 0x76, then the body (magic, kind,
// reserved, reply port, token, sent), then pad bytes of padding.
func probeBody(kind byte, replyPort uint16, pad int) []byte {
	b := []byte{0x20, 0x76, 0, 0, 'v', 'i', 'p', 'd', kind, 0, 0, 0,
		1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
	binary.BigEndian.PutUint16(b[10:], replyPort)
	for i := range pad {
		b = append(b, byte(i))
	}
	return b
}

// probeFrame is a probe src:sport -> dst:dport with a UDP checksum.
func probeFrame(src, dst netip.Addr, sport, dport uint16, kind byte, replyPort uint16, pad int) []byte {
	ip := ipLayer(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	buf := gopacket.NewSerializeBuffer()
	ls := append(l2Layers(0, etherType(src)), ip.(gopacket.SerializableLayer), udp, gopacket.Payload(probeBody(kind, replyPort, pad)))
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// udpOffsets returns the offsets of the IP and UDP headers of an untagged
// or tagged frame without IP options or IPv6 extension headers.
func udpOffsets(f []byte) (ip, udp int) {
	ip = l2Len(f)
	if f[ip]>>4 == 4 {
		return ip, ip + int(f[ip]&0x0f)*4
	}
	return ip, ip + 40
}

// udpChecksum computes the UDP checksum of a frame's datagram.
func udpChecksum(f []byte) uint16 {
	ip, udp := udpOffsets(f)
	dgram := append([]byte(nil), f[udp:]...)
	dgram[6], dgram[7] = 0, 0
	var pseudo []byte
	if f[ip]>>4 == 4 {
		pseudo = append(append(pseudo, f[ip+12:ip+20]...), 0, 17, byte(len(dgram)>>8), byte(len(dgram)))
	} else {
		pseudo = append(append(pseudo, f[ip+8:ip+40]...), 0, 0, byte(len(dgram)>>8), byte(len(dgram)), 0, 0, 0, 17)
	}
	c := ipChecksum(append(pseudo, dgram...))
	if c == 0 {
		c = 0xffff
	}
	return c
}

func isProbeFrame(f []byte) bool {
	_, udp := udpOffsets(f)
	return len(f) >= udp+8+28 && f[udp+8] == 0x20 && f[udp+9] == 0x76
}

// wantProbeAnswer is what a node sends back for the probe request in: the
// way it came (MACs, addresses and ports swapped; to the reply port when
// the probe names one), TTL or hop limit 64, kind 2, the rest echoed, the
// UDP checksum computed afresh (left 0 when the request had none; when the
// request's was wrong, the answer's is not checked).
func wantProbeAnswer(in, out []byte) []byte {
	w := append([]byte(nil), in...)
	copy(w[0:6], in[6:12])
	copy(w[6:12], in[0:6])
	ip, udp := udpOffsets(w)
	if w[ip]>>4 == 4 {
		copy(w[ip+12:ip+16], in[ip+16:ip+20])
		copy(w[ip+16:ip+20], in[ip+12:ip+16])
		w[ip+8] = 64
		binary.BigEndian.PutUint16(w[ip+10:], 0)
		binary.BigEndian.PutUint16(w[ip+10:], ipChecksum(w[ip:ip+int(w[ip]&0x0f)*4]))
	} else {
		copy(w[ip+8:ip+24], in[ip+24:ip+40])
		copy(w[ip+24:ip+40], in[ip+8:ip+24])
		w[ip+7] = 64
	}
	body := udp + 8 + 4
	copy(w[udp:udp+2], in[udp+2:udp+4])
	if binary.BigEndian.Uint16(in[body+6:]) != 0 {
		copy(w[udp+2:udp+4], in[body+6:body+8])
	} else {
		copy(w[udp+2:udp+4], in[udp:udp+2])
	}
	w[body+4] = 2
	switch sum := binary.BigEndian.Uint16(in[udp+6:]); {
	case sum == 0:
	case sum != udpChecksum(in):
		copy(w[udp+6:udp+8], out[udp+6:udp+8])
	default:
		binary.BigEndian.PutUint16(w[udp+6:], udpChecksum(w))
	}
	return w
}

// checkProbeAnswer: out is exactly the answer to the probe in.
func checkProbeAnswer(t *testing.T, in, out []byte) {
	t.Helper()
	if len(out) != len(in) {
		t.Errorf("probe answer of %d bytes to a %d-byte probe", len(out), len(in))
		return
	}
	if want := wantProbeAnswer(in, out); !bytes.Equal(out, want) {
		t.Errorf("probe answer differs:\n got % x\nwant % x", out, want)
	}
}

// TestProgProbe: a data-path probe from a trusted sender is answered by the
// program the way it came; a probe answer to this node's GUE port is passed
// up; nothing else is.
func TestProgProbe(t *testing.T) {
	r := newRig(t)
	answered := map[vipdStat]uint64{vipdStatSTAT_PROBE_REPLY: 1}
	malformed := map[vipdStat]uint64{vipdStatSTAT_DROP_GUE_MALFORMED: 1}
	req := probeFrame(dir4, node4, 40001, testGUEPort, 1, 0, 0)
	toPort := probeFrame(dir4, node4, 40002, testGUEPort, 1, 4000, 0)
	padded := probeFrame(dir4, node4, 40003, testGUEPort, 1, 0, 1200)
	v6 := probeFrame(be6a, node6, 40004, testGUEPort, 1, 0, 100)
	noSum := probeFrame(dir4, node4, 40005, testGUEPort, 1, 0, 0)
	_, u := udpOffsets(noSum)
	noSum[u+6], noSum[u+7] = 0, 0
	badMagic := probeFrame(dir4, node4, 40006, testGUEPort, 1, 0, 0)
	badMagic[u+8+4] = 'x'
	badType := probeFrame(dir4, node4, 40007, testGUEPort, 1, 0, 0)
	badType[u+8+1] = 0x77
	badKind := probeFrame(dir4, node4, 40008, testGUEPort, 9, 0, 0)
	short := probeFrame(dir4, node4, 40009, testGUEPort, 1, 0, 0)
	short = short[:len(short)-4]
	binary.BigEndian.PutUint16(short[14+2:], uint16(len(short)-14))
	binary.BigEndian.PutUint16(short[14+10:], 0)
	binary.BigEndian.PutUint16(short[14+10:], ipChecksum(short[14:34]))
	binary.BigEndian.PutUint16(short[u+4:], uint16(len(short)-u))

	for _, c := range []progCase{
		{name: "request from a member: answered", in: req, wantCode: xdpTX, wantStats: answered},
		{name: "to a reply port", in: toPort, wantCode: xdpTX, wantStats: answered},
		{name: "padding echoed", in: padded, wantCode: xdpTX, wantStats: answered},
		{name: "ipv6 underlay", in: v6, wantCode: xdpTX, wantStats: answered},
		{name: "no udp checksum: none in the answer", in: noSum, wantCode: xdpTX, wantStats: answered},
		{name: "from outside the cluster: dropped", in: probeFrame(stray4, node4, 40010, testGUEPort, 1, 0, 0), wantCode: xdpDrop,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_DROP_GUE_UNTRUSTED_SOURCE: 1}},
		{name: "an answer to our GUE port: passed up", in: probeFrame(dir4, node4, 40011, testGUEPort, 2, 0, 0), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PROBE_PASS: 1}},
		{name: "an answer to another port: not GUE", in: probeFrame(dir4, node4, testGUEPort, 40012, 2, 0, 0), wantCode: xdpPass,
			wantStats: map[vipdStat]uint64{vipdStatSTAT_PASS_NON_VIP: 1}},
		{name: "bad magic", in: badMagic, wantCode: xdpDrop, wantStats: malformed},
		{name: "other control type", in: badType, wantCode: xdpDrop, wantStats: malformed},
		{name: "other kind", in: badKind, wantCode: xdpDrop, wantStats: malformed},
		{name: "body cut short", in: short, wantCode: xdpDrop, wantStats: malformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.wantCode == xdpTX {
				c.wantOut = wantProbeAnswer(c.in, nil)
			}
			out := r.check(t, c)
			if c.wantCode == xdpTX {
				p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
				udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if udp == nil {
					t.Fatalf("answer has no UDP: %v", p)
				}
				if sum := binary.BigEndian.Uint16(c.in[u+6:]); sum != 0 && udpChecksum(out) != udp.Checksum {
					t.Errorf("answer's UDP checksum %#04x, computed %#04x", udp.Checksum, udpChecksum(out))
				}
			}
		})
	}
}
