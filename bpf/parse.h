/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * parse.h: from a frame to the flow the director looks up: L2 (VLAN tags),
 * IPv6 extension headers, ports and TCP flags, the inner tuple of an ICMP
 * error.
 */
#ifndef VIPD_PARSE_H
#define VIPD_PARSE_H

#include "packet.h"

#define MAX_EXT_HDRS 4  /* IPv6 extension headers skipped before giving up */

/* What the director needs of a packet; addresses as loaded (network order). */
struct flow {
	__u32 src[4];
	__u32 dst[4];
	__u32 ports;    /* sport | dport << 16 as loaded; 0 for fragments */
	__u16 vip_port; /* host order: the port the VIP is looked up with */
	__u8 proto;
	__u8 family;   /* 4 or 6 */
	__u8 frag;     /* 0, FRAG_FIRST or FRAG_LATER */
	__u8 icmp;     /* steered by the inner tuple of an ICMP error */
	__u8 tcp_flags;
	__u8 df;       /* IPv4 DF set (a "too big" answer is allowed) */
	__u32 ip_end;  /* offset of the end of the IP packet (its length field), <= the frame */
	__u32 len;     /* the frame's length */
};

#define FRAG_FIRST 1
#define FRAG_LATER 2

/* What a parse step made of a packet. */
enum parse_result {
	PARSE_OK,    /* the flow is filled in */
	PARSE_PASS,  /* nothing the director steers: pass it untouched */
	PARSE_SHORT, /* an L4 header (or an ICMP error's quote) cut short: pass it, never steer it */
};

/*
 * ip4_hdr_len: the length of the IPv4 header at ip (its fixed part readable:
 * the caller checked), or 0 when it is not one (version 4, IHL at least 5).
 */
static __always_inline __u32 ip4_hdr_len(const struct ip4_hdr *ip)
{
	__u32 ihl = (ip->ver_ihl & 0x0f) * 4;

	if ((ip->ver_ihl >> 4) != 4 || ihl < sizeof(*ip))
		return 0;
	return ihl;
}

/* ip6_hdr_ok: whether the IPv6 header at ip (readable) says version 6. */
static __always_inline int ip6_hdr_ok(const struct ip6_hdr *ip6)
{
	return (bpf_ntohl(ip6->ver_tc_flow) >> 28) == 6;
}

/* l3 of a frame: skips up to two VLAN tags. Returns 0 if not IP. */
static __always_inline __u16 parse_l2(void *data, void *data_end, __u32 *l2_len)
{
	struct eth_hdr *eth = data;
	struct vlan_hdr *vlan;
	__u16 proto;
	__u32 off = sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = eth->proto;
#pragma clang loop unroll(full)
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vlan = data + off;
		if ((void *)(vlan + 1) > data_end)
			return 0;
		proto = vlan->proto;
		off += sizeof(*vlan);
	}
	*l2_len = off;
	return proto;
}

/*
 * IPv6: skips extension headers; returns the L4 offset, sets *proto and
 * *frag. Returns 0 on a truncated or too long chain.
 */
static __always_inline __u32 skip_ip6_ext(void *data, void *data_end, __u32 off,
					  __u8 *proto, __u8 *frag)
{
	__u8 nh = *proto;

#pragma clang loop unroll(full)
	for (int i = 0; i < MAX_EXT_HDRS; i++) {
		struct ext_hdr *ext;

		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
		    nh != IPPROTO_FRAGMENT && nh != IPPROTO_AH)
			break;
		if (off > HDR_OFF_MAX)
			return 0;
		ext = data + off;
		if ((void *)(ext + 1) > data_end)
			return 0;
		if (nh == IPPROTO_FRAGMENT) {
			__u16 fo = bpf_ntohs(ext->frag_off);

			*frag = (fo & IP6_OFFSET) ? FRAG_LATER : FRAG_FIRST;
			off += 8;
		} else if (nh == IPPROTO_AH) {
			off += ((__u32)ext->len + 2) * 4;
		} else {
			off += ((__u32)ext->len + 1) * 8;
		}
		nh = ext->nexthdr;
	}
	if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	    nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH)
		return 0;
	*proto = nh;
	return off;
}

/*
 * Reads the ports (and TCP flags) at off unless the packet is a later
 * fragment. The whole L4 header must be there, inside both the frame and
 * the IP length: 20 bytes of TCP, 8 of UDP (PARSE_SHORT otherwise, so a
 * header cut short is never encapsulated).
 */
static __always_inline enum parse_result read_ports(void *data, void *data_end, __u32 off, struct flow *f)
{
	__u8 *p;

	if (f->frag)
		f->ports = 0;
	if (f->frag == FRAG_LATER)
		return PARSE_OK;
	if (off > DEEP_OFF_MAX)
		return PARSE_PASS;
	/* ip_end is within the frame (the caller checked): this bounds both. */
	if (off + (f->proto == IPPROTO_TCP ? TCP_HDR_MIN : UDP_HDR_LEN) > f->ip_end)
		return PARSE_SHORT;
	p = data + off;
	if ((void *)(p + UDP_HDR_LEN) > data_end) /* for the verifier */
		return PARSE_SHORT;
	f->vip_port = bpf_ntohs(((__be16 *)p)[1]);
	if (!f->frag)
		f->ports = *(__u32 *)p;
	if (f->proto == IPPROTO_TCP) {
		if ((void *)(p + TCP_FLAGS_OFF + 1) > data_end)
			return PARSE_SHORT;
		f->tcp_flags = p[TCP_FLAGS_OFF];
	}
	return PARSE_OK;
}

/*
 * ICMP error: the embedded packet went VIP -> client. Fill f with the flow
 * client -> VIP so it hashes like the flow it belongs to. off is the offset
 * of the embedded IP header. PARSE_OK: f now describes a steerable flow;
 * PARSE_SHORT: the quote stops before 8 bytes of L4 (the ports and what a
 * host needs to match its socket).
 */
static __always_inline enum parse_result parse_icmp_inner(void *data, void *data_end, __u32 off,
					    struct flow *f)
{
	__u16 *ports;

	if (off > DEEP_OFF_MAX)
		return PARSE_PASS;
	if (f->family == 4) {
		struct ip4_hdr *ip = data + off;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end || off + sizeof(*ip) > f->ip_end)
			return PARSE_SHORT;
		ihl = ip4_hdr_len(ip);
		if (!ihl)
			return PARSE_PASS;
		if (*(__u32 *)ip->saddr != f->dst[0])
			return PARSE_PASS;
		if (ip->frag_off & bpf_htons(IP_OFFSET))
			return PARSE_PASS;
		f->proto = ip->proto;
		f->src[0] = *(__u32 *)ip->daddr;
		off += ihl;
	} else {
		struct ip6_hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end || off + sizeof(*ip6) > f->ip_end)
			return PARSE_SHORT;
		if (!addr16_eq(ip6->saddr, f->dst))
			return PARSE_PASS;
		f->proto = ip6->nexthdr;
		copy16(f->src, ip6->daddr);
		off += sizeof(*ip6);
	}
	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return PARSE_PASS;
	if (off > DEEP_OFF_MAX)
		return PARSE_PASS;
	ports = data + off;
	if ((void *)(ports + 4) > data_end || off + ICMP_QUOTE_L4_MIN > f->ip_end)
		return PARSE_SHORT;
	/* Embedded: sport = VIP port, dport = client port. */
	f->vip_port = bpf_ntohs(ports[0]);
	f->ports = (__u32)ports[1] | ((__u32)ports[0] << 16);
	f->icmp = 1;
	return PARSE_OK;
}

static __always_inline int is_icmp_error(__u8 family, __u8 type)
{
	if (family == 4)
		return type == 3 || type == 11;
	return type == 1 || type == 2 || type == 3;
}

#endif /* VIPD_PARSE_H */
