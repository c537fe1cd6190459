/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * icmp.h: path MTU for clients. A VIP packet that would exceed the path MTU
 * once encapsulated is answered, like a router would, with ICMP
 * "fragmentation needed" (IPv4, DF set) or ICMPv6 "packet too big" carrying
 * the MTU less the encapsulation, so the client's PMTU discovery converges
 * instead of the connection stalling on silent drops. The answers are
 * rate-limited per CPU (a token bucket).
 */
#ifndef VIPD_ICMP_H
#define VIPD_ICMP_H

#include "hash.h"
#include "packet.h"
#include "parse.h"
#include "encap.h"
#include "vipd.h"

#define NSEC_PER_SEC 1000000000ULL
#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4
#define ICMPV6_PKT_TOOBIG 2
#define ICMP_HDR_LEN 8
#define ICMP_MTU_MIN4 68    /* the smallest MTU IPv4 allows: below it, no answer */
#define ICMP_MTU_MIN6 1280  /* the smallest IPv6 link MTU */

/* The per-CPU token bucket of "too big" answers (icmp_limit in vipd.c). */
struct icmp_bucket {
	__u64 last;   /* bpf_ktime_get_ns of the last answer or refusal */
	__u64 credit; /* tokens x NSEC_PER_SEC: a token costs NSEC_PER_SEC */
};

/*
 * icmp_allowed takes a token from b, filled at rate per second up to one
 * second's worth; it returns whether there was one.
 */
static __always_inline int icmp_allowed(struct icmp_bucket *b, __u32 rate)
{
	__u64 now = bpf_ktime_get_ns(), el = now - b->last, cap = (__u64)rate * NSEC_PER_SEC;
	__u64 credit;

	if (el > NSEC_PER_SEC)
		el = NSEC_PER_SEC; /* also keeps el * rate from overflowing */
	b->last = now;
	credit = b->credit + el * rate;
	if (credit > cap)
		credit = cap;
	if (credit < NSEC_PER_SEC) {
		b->credit = credit;
		return 0;
	}
	b->credit = credit - NSEC_PER_SEC;
	return 1;
}

/* Folds a 64-bit one's complement sum to the 16-bit checksum field. */
static __always_inline __u16 csum_fold64(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return csum_fold((__u32)sum);
}

/* Adds the 32-bit words of an address of family to sum. */
static __always_inline __u64 csum_addr(__u64 sum, const __u32 *a, __u8 family)
{
	sum += a[0];
	if (family == 6)
		sum += (__u64)a[1] + a[2] + a[3];
	return sum;
}

/*
 * send_too_big turns the frame (l2_len bytes of L2, then the client's IP
 * packet described by f) into the ICMP answer: the L2 header with its MACs
 * swapped (back to the router that sent it, VLAN tags kept), an IP header
 * from the VIP (the address the client sent to) to the client, the ICMP
 * header with mtu, and the first ICMP_QUOTE_LEN bytes of the client's
 * packet. Returns 0 when the frame is ready for XDP_TX, -1 when the packet
 * is too short to quote (only with an MTU below any real one) and the frame
 * is untouched, -2 when resizing failed.
 */
static __always_inline int send_too_big(struct xdp_md *ctx, const struct flow *f, __u32 l2_len, __u32 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = frame_len(data, data_end), hdr;
	__u8 mac[ETH_ALEN];
	struct icmp_hdr *icmp;
	void *l3, *quote;
	__u64 sum;
	long part;

	if (l2_len > L2_LEN_MAX || len < l2_len + ICMP_QUOTE_LEN)
		return -1;
	hdr = (f->family == 4 ? sizeof(struct ip4_hdr) : sizeof(struct ip6_hdr)) + ICMP_HDR_LEN;
	if (bpf_xdp_adjust_tail(ctx, (int)(l2_len + ICMP_QUOTE_LEN) - (int)len))
		return -2;
	if (bpf_xdp_adjust_head(ctx, -(int)hdr))
		return -2;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + hdr + L2_LEN_MAX > data_end)
		return -2;
	copy_l2(data, data + hdr, l2_len);
	copy6(mac, data);
	copy6(data, data + ETH_ALEN);
	copy6(data + ETH_ALEN, mac);
	l3 = data + l2_len;
	if (l3 + hdr + ICMP_QUOTE_LEN > data_end)
		return -2;
	quote = l3 + hdr;
	if (f->family == 4) {
		struct ip4_hdr *ip = l3;

		set_ethertype(data, l2_len, 4);
		ip->ver_ihl = 0x45;
		ip->tos = 0;
		ip->tot_len = bpf_htons(hdr + ICMP_QUOTE_LEN);
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = OUTER_TTL;
		ip->proto = IPPROTO_ICMP;
		copy4(ip->saddr, f->dst);
		copy4(ip->daddr, f->src);
		ip->check = ip4_csum(ip);
		icmp = (void *)(ip + 1);
		icmp->type = ICMP_DEST_UNREACH;
		icmp->code = ICMP_FRAG_NEEDED;
		icmp->rest = bpf_htonl(mtu & 0xffff); /* unused (16 bits), next-hop MTU (16) */
		sum = 0;
	} else {
		struct ip6_hdr *ip6 = l3;

		set_ethertype(data, l2_len, 6);
		ip6->ver_tc_flow = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(ICMP_HDR_LEN + ICMP_QUOTE_LEN);
		ip6->nexthdr = IPPROTO_ICMPV6;
		ip6->hop_limit = OUTER_TTL;
		copy16(ip6->saddr, f->dst);
		copy16(ip6->daddr, f->src);
		icmp = (void *)(ip6 + 1);
		icmp->type = ICMPV6_PKT_TOOBIG;
		icmp->code = 0;
		icmp->rest = bpf_htonl(mtu);
		/* The pseudo-header: addresses, upper-layer length, next header. */
		sum = csum_addr(csum_addr(0, f->src, 6), f->dst, 6);
		sum += bpf_htonl(ICMP_HDR_LEN + ICMP_QUOTE_LEN);
		sum += bpf_htonl(IPPROTO_ICMPV6);
	}
	icmp->check = 0;
	part = bpf_csum_diff(0, 0, quote, ICMP_QUOTE_LEN, 0);
	if (part < 0)
		return -2;
	sum += (__u32)part;
	sum += *(__u32 *)icmp;
	sum += icmp->rest;
	icmp->check = csum_fold64(sum);
	return 0;
}

#endif /* VIPD_ICMP_H */
