/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * encap.h: the GUE encapsulation: its header, the outer headers' length and
 * the L2 header moves around them.
 */
#ifndef VIPD_ENCAP_H
#define VIPD_ENCAP_H

#include "hash.h"
#include "packet.h"
#include "vipd.h"

/* outer_ip4 and outer_udp_gue build words in little-endian order. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "bpfel only");

#define GUE_SPORT_BASE 0xC000 /* outer source ports 49152-65535, picked by the flow hash (ECMP) */
#define GUE_SPORT_MASK 0x3FFF
#define GUE_BASE_LEN 4      /* ver_c_hlen, proto, flags: hlen counts the words after them */
#define GUE_HLEN_MASK 0x1f  /* ver_c_hlen: the header length in 32-bit words */
#define GUE_VER_MASK 0xc0  /* ver_c_hlen: the version, 0 */
#define GUE_C_BIT 0x20     /* ver_c_hlen: a control message (a probe), not data */
#define HOP_LEN_MAX 16      /* an IPv6 hop: a forwarder checks that much for either family */

/*
 * GUE base header plus GLB's private data, hops follow (GLB's
 * docs/development/gue-header.md): the hops are the *alternates* only, the
 * outer destination is not among them; next_hop is the index of the
 * alternate to try next, 0 from a director; a node that cannot use the
 * packet sends it to hops[next_hop] with its own address as the outer
 * source and next_hop + 1, and handles it itself once next_hop >= hop_count.
 */
struct gue_hdr {
	__u8 ver_c_hlen; /* version (2 bits) | C (1) | hlen (5, 32-bit words) */
	__u8 proto;      /* 4 = IPv4 inner, 41 = IPv6 inner */
	__be16 flags;
	__be16 priv_type; /* 0 */
	__u8 next_hop;
	__u8 hop_count;
};

/* The longest outer header a director pushes: IPv6, MAX_HOPS IPv6 alternates. */
#define ENCAP_LEN_MAX (sizeof(struct ip6_hdr) + sizeof(struct udp_hdr) + sizeof(struct gue_hdr) + 16 * MAX_HOPS)
/* The longest packet a director encapsulates: room for ENCAP_LEN_MAX in a 16-bit IP length. */
#define INNER_LEN_MAX (0xFFFF - 128)
_Static_assert(ENCAP_LEN_MAX <= 0xFFFF - INNER_LEN_MAX, "INNER_LEN_MAX leaves no room for the outer headers");
/* The shortest outer header a backend strips (IPv4 + UDP): also keeps the L2 move's ends apart. */
#define OUTER_LEN_MIN 28

/* The length of a hop in a GUE header: an address of the underlay family. */
static __always_inline __u32 gue_hop_len(__u8 family)
{
	return family == 4 ? 4 : 16;
}

/* The UDP port of GUE: this node's config, or the default. */
static __always_inline __u16 gue_port(const struct dp_config *cfg)
{
	return cfg->gue_port ? cfg->gue_port : GUE_PORT_DEFAULT;
}

/* Outer headers the director pushes for an underlay family and number of alternates. */
static __always_inline __u32 encap_len(__u8 family, __u32 nalt)
{
	if (family == 4)
		return sizeof(struct ip4_hdr) + sizeof(struct udp_hdr) + sizeof(struct gue_hdr) + 4 * nalt;
	return sizeof(struct ip6_hdr) + sizeof(struct udp_hdr) + sizeof(struct gue_hdr) + 16 * nalt;
}

/* Copies an L2 header of l2_len (14, 18 or 22) bytes from src to dst. */
static __always_inline void copy_l2(void *dst, const void *src, __u32 l2_len)
{
	copy6(dst, src);
	copy6(dst + 6, src + 6);
	*(__u16 *)(dst + 12) = *(const __u16 *)(src + 12);
	if (l2_len >= 18)
		copy4(dst + 14, src + 14);
	if (l2_len >= 22)
		copy4(dst + 18, src + 18);
}

/* Copies the MACs of an L2 header from src to dst. */
static __always_inline void copy_macs(void *dst, const void *src)
{
	*(__u64 *)dst = *(const __u64 *)src;
	*(__u32 *)(dst + 8) = *(const __u32 *)(src + 8);
}

/* Copies the VLAN tags of an L2 header of l2_len (18 or 22) bytes: the
 * TPID at 12 and what follows up to the last tag's TCI; the ethertype
 * after them is the caller's. */
static __always_inline void copy_l2_tags(void *dst, const void *src, __u32 l2_len)
{
	copy4(dst + 12, src + 12);
	if (l2_len >= 22)
		copy4(dst + 16, src + 16);
}

/* Sets the ethertype of an L2 header of l2_len bytes to IP of family. */
static __always_inline void set_ethertype(void *data, __u32 l2_len, __u8 family)
{
	__be16 proto = bpf_htons(family == 4 ? ETH_P_IP : ETH_P_IPV6);

	if (l2_len == 14)
		((struct eth_hdr *)data)->proto = proto;
	else if (l2_len == 18)
		((struct vlan_hdr *)(data + 14))->proto = proto;
	else
		((struct vlan_hdr *)(data + 18))->proto = proto;
}

static __always_inline void set_macs(void *data, const __u8 *dmac, const __u8 *smac)
{
	struct eth_hdr *eth = data;

	copy6(eth->dst, dmac);
	copy6(eth->src, smac);
}

/* set_macs12 writes the 12 bytes at macs (destination MAC, then source) as
 * the frame's MACs: the next-hop cache keeps them side by side. */
static __always_inline void set_macs12(void *data, const __u8 *macs)
{
	*(__u64 *)data = *(const __u64 *)macs;
	*(__u32 *)(data + 8) = *(const __u32 *)(macs + 8);
}

/*
 * outer_ip4 writes the outer IPv4 header of a GUE packet of tot_len bytes.
 * Every field but the length is the next-hop cache entry's: sum is its
 * checksum over them (nh_entry.ip4_sum), so a packet only adds its length.
 */
static __always_inline void outer_ip4(struct ip4_hdr *ip, __u32 tot_len, const __u8 *src,
				      const __u8 *dst, __u32 sum)
{
	__u32 len = bpf_htons(tot_len);

	/* Word stores: version 4, IHL 5, TOS 0, length; id 0, DF; TTL,
	 * UDP, checksum; the addresses (as words of ip: through ip->saddr,
	 * struct ip4_hdr's alignment of 2 makes clang store halves). */
	((__u32 *)ip)[0] = bpf_htonl(0x45000000) | len << 16;
	((__u32 *)ip)[1] = bpf_htonl(IP_DF);
	((__u32 *)ip)[2] = bpf_htons((OUTER_TTL << 8) | IPPROTO_UDP) | (__u32)csum_fold(sum + len) << 16;
	((__u32 *)ip)[3] = *(const __u32 *)src;
	((__u32 *)ip)[4] = *(const __u32 *)dst;
}

/* outer_ip6 writes the outer IPv6 header; the flow label is the flow hash's. */
static __always_inline void outer_ip6(struct ip6_hdr *ip6, __u32 payload_len, const __u8 *src,
				      const __u8 *dst, __u32 hash)
{
	ip6->ver_tc_flow = bpf_htonl(0x60000000 | (hash & 0xFFFFF));
	ip6->payload_len = bpf_htons(payload_len);
	ip6->nexthdr = IPPROTO_UDP;
	ip6->hop_limit = OUTER_TTL;
	copy16(ip6->saddr, src);
	copy16(ip6->daddr, dst);
}

/*
 * outer_udp_gue writes the UDP header (len bytes, checksum 0: see "Outer UDP
 * checksum" in vipd.c) and the GUE header of hlen words (GLB: 1 + hop words)
 * before the nhops alternates.
 */
static __always_inline void outer_udp_gue(struct udp_hdr *udp, __u32 len, __u16 port, __u32 hash,
					  __u32 hlen, __u8 inner_family, __u8 next, __u8 nhops)
{
	__u32 sport = GUE_SPORT_BASE | ((hash >> 16) & GUE_SPORT_MASK);
	__u32 proto = inner_family == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;

	/* Four word stores: ports; length and checksum 0; GUE version 0, C
	 * 0, hlen, proto, flags 0; private type 0, next_hop, hop_count. */
	((__u32 *)udp)[0] = bpf_htonl(sport << 16 | port);
	((__u32 *)udp)[1] = bpf_htonl(len << 16);
	((__u32 *)udp)[2] = bpf_htonl((hlen & GUE_HLEN_MASK) << 24 | proto << 16);
	((__u32 *)udp)[3] = bpf_htonl((__u32)next << 8 | nhops);
}

#endif /* VIPD_ENCAP_H */
