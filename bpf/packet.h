/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * packet.h: the wire formats vipd.c reads and writes (Ethernet, VLAN, IPv4,
 * IPv6, UDP, ICMP), their protocol numbers, and word-wise access to them.
 */
#ifndef VIPD_PACKET_H
#define VIPD_PACKET_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_ALEN 6
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define AF_INET 2
#define AF_INET6 10

#define IPPROTO_HOPOPTS 0
#define IPPROTO_ICMP 1
#define IPPROTO_IPIP 4
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_IPV6 41
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define IP_DF 0x4000
#define IP6_OFFSET 0xFFF8 /* IPv6 fragment header: the offset bits */
#define TCP_SYN 0x02
#define TCP_FLAGS_OFF 13 /* offset of the flags byte in a TCP header */
#define TCP_HDR_MIN 20   /* a TCP header without options */
#define UDP_HDR_LEN 8
#define ICMP_QUOTE_L4_MIN 8 /* L4 bytes an ICMP error must quote to be steered */
#define PORTS_LEN 4      /* source and destination port, TCP or UDP */
#define MAX_VLAN_TAGS 2  /* VLAN tags parse_l2 skips (802.1Q, QinQ) */
#define OUTER_TTL 64     /* TTL / hop limit of the headers vipd writes */

/*
 * Verifier bounds. The verifier accepts a packet access at a computed offset
 * only once the offset has an upper bound: these are those bounds (the
 * GUE ones are in encap.h), each above what a well-formed packet of its kind
 * reaches. A check against one is there for the verifier; what a packet
 * beyond it gets (pass, drop) is written at the check.
 */
#define L2_LEN_MAX 22     /* Ethernet + MAX_VLAN_TAGS tags: the most parse_l2 skips */
#define HDR_OFF_MAX 512   /* an outer header after IP (IPv6 extension, UDP, ICMP) */
#define DEEP_OFF_MAX 1024 /* behind more headers: ports after IPv6 extensions, in an ICMP error, in GUE */
#define GUE_OFF_MAX 256   /* the GUE header: L2 + IPv4 with options or IPv6 + UDP */
#define GUE_END_MAX 512   /* a hop or the inner packet: GUE_OFF_MAX + the longest GUE header (128) */

struct eth_hdr {
	__u8 dst[ETH_ALEN];
	__u8 src[ETH_ALEN];
	__be16 proto;
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};
_Static_assert(L2_LEN_MAX == sizeof(struct eth_hdr) + MAX_VLAN_TAGS * sizeof(struct vlan_hdr),
	       "L2_LEN_MAX is Ethernet and MAX_VLAN_TAGS tags");

struct ip4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 proto;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct ip6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct ext_hdr {
	__u8 nexthdr;
	__u8 len;
	__be16 frag_off; /* fragment header only */
};

struct udp_hdr {
	__be16 sport;
	__be16 dport;
	__be16 len;
	__u16 check;
};

struct icmp_hdr {
	__u8 type;
	__u8 code;
	__u16 check;
	__u32 rest;
};

/*
 * Word-wise copies: __builtin_memcpy on byte arrays compiles to one load and
 * one store per byte, which on the encapsulation path added up to more than
 * the rest of it. Unaligned word access to packet and map memory is fine on
 * the architectures XDP runs on here (x86-64, arm64).
 */
static __always_inline void copy4(void *d, const void *s)
{
	*(__u32 *)d = *(const __u32 *)s;
}

static __always_inline void copy6(void *d, const void *s)
{
	((__u16 *)d)[0] = ((const __u16 *)s)[0];
	((__u16 *)d)[1] = ((const __u16 *)s)[1];
	((__u16 *)d)[2] = ((const __u16 *)s)[2];
}

static __always_inline void copy16(void *d, const void *s)
{
	((__u32 *)d)[0] = ((const __u32 *)s)[0];
	((__u32 *)d)[1] = ((const __u32 *)s)[1];
	((__u32 *)d)[2] = ((const __u32 *)s)[2];
	((__u32 *)d)[3] = ((const __u32 *)s)[3];
}

/*
 * The frame's length. The barrier keeps it a 64-bit scalar: with 32-bit
 * ALU instructions (-mcpu=v3) clang would otherwise fold the subtraction
 * into 32-bit arithmetic on the packet pointers, which the verifier rejects.
 */
static __always_inline __u32 frame_len(void *data, void *data_end)
{
	__u64 len = data_end - data;

	asm volatile("" : "+r"(len));
	return len;
}

/*
 * load32: the 32-bit word at p as one load. A field of a 2-aligned header
 * (an IPv4 address in struct ip4_hdr) would otherwise be read 16 bits at a
 * time; BPF loads from a packet need no alignment on the kernels vipd
 * runs on (HAVE_EFFICIENT_UNALIGNED_ACCESS: x86-64, arm64).
 */
static __always_inline __u32 load32(const void *p)
{
	return *(const __u32 *)__builtin_assume_aligned(p, 4);
}

/* addr16_eq: memcmp is not available in BPF. */
static __always_inline int addr16_eq(const void *a, const void *b)
{
	const __u32 *x = a, *y = b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

#endif /* VIPD_PACKET_H */
