package dataplane

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// FlowHash is the XDP program's flow hash (flow_hash in bpf/hash.h) of a
// packet from src:sport to dst:dport with protocol proto, under the
// program's 32-bit seed: the row of a table a packet takes is its low 16
// bits. The program loads packet bytes as native-endian words; so does
// this. The prog tests run the program on the same flows and compare (a
// change to one without the other fails them).
func FlowHash(seed uint32, src, dst netip.Addr, sport, dport uint16, proto uint8) uint32 {
	h := flowHashWord(seed, foldAddr(src))
	h = flowHashWord(h, foldAddr(dst))
	var p [4]byte
	binary.BigEndian.PutUint16(p[0:], sport)
	binary.BigEndian.PutUint16(p[2:], dport)
	h = flowHashWord(h, binary.NativeEndian.Uint32(p[:]))
	h = flowHashWord(h, uint32(proto))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func flowHashWord(h, w uint32) uint32 {
	h ^= w * 0xcc9e2d51
	return bits.RotateLeft32(h, 13)*5 + 0xe6546b64
}

// foldAddr XORs an address's 32-bit words as the program loads them.
func foldAddr(a netip.Addr) uint32 {
	if a.Is4() {
		b := a.As4()
		return binary.NativeEndian.Uint32(b[:])
	}
	b := a.As16()
	return binary.NativeEndian.Uint32(b[0:]) ^ binary.NativeEndian.Uint32(b[4:]) ^
		binary.NativeEndian.Uint32(b[8:]) ^ binary.NativeEndian.Uint32(b[12:])
}
