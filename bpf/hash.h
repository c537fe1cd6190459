/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * hash.h: the flow hash (which row of a VIP's table a packet takes), the VIP
 * filter's bit of an address, and the IPv4 header checksum.
 */
#ifndef VIPD_HASH_H
#define VIPD_HASH_H

#include "packet.h"
#include "parse.h"
#include "vipd.h"

static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/*
 * hash_word: murmur3's round, h = rotl(h ^ w * c1, 13) * 5 + c2, written
 * for latency: the rounds are a chain the director path waits on (the
 * table row depends on it), and "* 5 + c2" as a multiply and an add is 4
 * cycles where "(x << 2) + (x + c2)", two independent steps and an add, is
 * 2. The barrier keeps clang from folding it back into a multiply.
 */
static __always_inline __u32 hash_word(__u32 h, __u32 w)
{
	__u32 x, x4;

	h ^= w * 0xcc9e2d51;
	x = rotl32(h, 13);
	x4 = x << 2;
	asm volatile("" : "+r"(x4));
	return x4 + (x + 0xe6546b64);
}

/*
 * flow_hash: a murmur3-style mix of four words: src, dst (IPv6 addresses
 * XOR-folded to one word each: hashing all eight words cost ~9 ns), ports,
 * proto; then murmur3's finaliser. dataplane/packet_test.go reimplements it
 * to predict rows and ports.
 */
static __always_inline __u32 flow_hash(const struct flow *f, __u32 seed)
{
	__u32 src = f->src[0], dst = f->dst[0], h = seed;

	if (f->family == 6) {
		src ^= f->src[1] ^ f->src[2] ^ f->src[3];
		dst ^= f->dst[1] ^ f->dst[2] ^ f->dst[3];
	}
	h = hash_word(h, src);
	h = hash_word(h, dst);
	h = hash_word(h, f->ports);
	h = hash_word(h, f->proto);
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/*
 * vip_filter_slot: the slot of f's destination in vip_filter (bpf/vipd.h):
 * its words XOR-folded to 16 bits, one of VIP_FILTER_WORDS * 32 slots of
 * two bits. dataplane/slots.go computes the same for the loader.
 */
static __always_inline __u32 vip_filter_slot(const struct flow *f)
{
	__u32 fold = f->dst[0];

	if (f->family == 6)
		fold ^= f->dst[1] ^ f->dst[2] ^ f->dst[3];
	return (fold ^ (fold >> 16)) & 0xffff;
}
_Static_assert(VIP_FILTER_WORDS * 32 == 0x10000, "vip_filter_slot indexes 16 bits, two bits a slot");

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 ip4_csum(struct ip4_hdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;

	ip->check = 0;
#pragma clang loop unroll(full)
	for (int i = 0; i < sizeof(*ip) / 2; i++)
		sum += w[i];
	return csum_fold(sum);
}

/* ip4_sum: an outer IPv4 header's checksum over every field but the
 * length, from src to dst, unfolded (16-bit words as loaded, RFC 1071):
 * version, IHL and TOS; DF; TTL and protocol; the addresses. */
static __always_inline __u32 ip4_sum(const __u8 *src, const __u8 *dst)
{
	__u32 s = *(const __u32 *)src, d = *(const __u32 *)dst;

	return bpf_htons(0x4500) + bpf_htons(IP_DF) + bpf_htons((OUTER_TTL << 8) | IPPROTO_UDP) +
	       (s & 0xffff) + (s >> 16) + (d & 0xffff) + (d >> 16);
}

#endif /* VIPD_HASH_H */
