//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * vipd.c: the node's XDP program, director and backend in one.
 *
 * Director: Ethernet, up to two VLAN tags, IPv4 (options honoured) or IPv6
 * (extension headers skipped up to MAX_EXT_HDRS), TCP/UDP, ICMP errors by
 * their inner tuple -> VIP lookup (port, then port 0) -> flow hash -> row of
 * the VIP's table -> GUE encapsulation towards the primary -> XDP_TX.
 *
 * Backend: UDP to this node's GUE port -> the inner destination must be a
 * bound VIP (else drop: the loop guard) -> TCP non-SYN without a local socket
 * and a hop left -> second chance to the next hop; otherwise decapsulate and
 * XDP_PASS.
 *
 * Everything else is XDP_PASS untouched.
 *
 * This file holds the maps and the roles (director, backend, forward); the
 * steps they share are in headers by topic: packet.h (wire formats, word
 * copies), parse.h (L2 to the flow), hash.h (flow hash, IPv4 checksum),
 * fib.h (next hops), encap.h (GUE), sock.h (socket ownership). vipd.h is
 * the contract with the Go loader.
 *
 * Rules worth knowing (also in the Go package documentation):
 *
 * Fragments: every fragment of a fragmented packet (IPv4 MF or offset != 0,
 * IPv6 fragment header) is hashed on (src, dst, proto) with ports 0, so all
 * fragments of a datagram land on the same row. A first fragment matches the
 * VIP by its port, then port 0; non-first fragments carry no port and match
 * only port-0 ("any port") VIPs; unmatched they are passed untouched and
 * counted (STAT_PASS_FRAGMENT).
 *
 * ICMP errors (IPv4 type 3 and 11, ICMPv6 types 1, 2, 3) addressed to a VIP
 * are steered by the embedded packet (VIP -> client): its tuple is swapped
 * back to client -> VIP before hashing, so the error reaches the backend that
 * owns the flow. The embedded source must equal the outer destination.
 *
 * Outer UDP checksum: 0 on IPv4 (as GLB) and on IPv6 too (RFC 6935/6936
 * zero-checksum tunnel mode; the receiving end is this program, which never
 * hands the outer header to the stack).
 *
 * Unresolved neighbour (BPF_FIB_LKUP_RET_NO_NEIGH): the encapsulated frame is
 * XDP_PASSed (counted) so the kernel can resolve the neighbour; the original
 * VIP packet is never handed to the stack.
 *
 * Lookup device: bpf_fib_lookup refuses (BPF_FIB_LKUP_RET_FWD_DISABLED)
 * unless forwarding is enabled on the device its params.ifindex names, and
 * the lookup runs as if the packet had arrived there. Looking up "from" the
 * uplink would require forwarding on the uplink, which also lets the kernel
 * route VIP packets back out of it: the loop of docs/field-notes.md, note 3. So lookups
 * use dp_config.fib_ifindex (the loader sets it to lo, the only device with
 * forwarding on; nothing arrives on lo from the network), or the ingress
 * device when it is 0. Refused lookups are dropped and counted
 * (STAT_DROP_FIB_FWD_DISABLED). The helper reports the egress device; equal
 * to the ingress one means XDP_TX, otherwise bpf_redirect.
 *
 * Next hops of a director's backends are cached per CPU (nh_cache) with the
 * path MTU for a second; the clock is read on every 16th use, so an expired
 * entry serves at most 15 more packets per CPU before it is looked up again.
 * A frame that would exceed the MTU is dropped and counted
 * (STAT_DROP_TOO_BIG).
 *
 * Second chance: the outer destination becomes hops[next_hop + 1], next_hop
 * is incremented, the outer TTL / hop limit decremented (a hop at 1 is
 * dropped), the IPv4 header checksum recomputed and the UDP checksum set to
 * 0; the outer source (the director) is kept. The hop list comes from the
 * packet: like GLB, this trusts GUE arriving at the GUE port, which the
 * network edge must filter. GUE whose IP or UDP length disagrees with the
 * frame is dropped (STAT_DROP_GUE_MALFORMED).
 *
 * A listener socket owns a non-SYN TCP segment only if it completes a SYN
 * cookie (bpf_tcp_check_syncookie): every backend listens on the VIP.
 *
 * Local primary: when the row's primary is this node and the VIP is bound,
 * the packet is passed as is, except a TCP segment without SYN (RST
 * included, as on the backend path) that this node does not own (owns_tcp,
 * the backend's check) while the row's secondary is another node: that
 * segment belongs to a flow the secondary holds (a drain or undrain moved
 * the row's primary), so it is encapsulated with hops [this node,
 * secondary] and next_hop already 1, outer destination the secondary,
 * exactly what the secondary would get from a second chance here; it
 * decapsulates (no hop left) and never forwards again. Counted
 * STAT_DIRECTOR_LOCAL_SECOND_CHANCE plus the encapsulation's verdict.
 * Fragments, ICMP errors and UDP are passed as before (the backend path has
 * no second chance for them either), and so is everything when the
 * secondary is this node, the same slot, or of another underlay family.
 */

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "vipd.h"
#include "packet.h"
#include "parse.h"
#include "hash.h"
#include "sock.h"
#include "fib.h"
#include "encap.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS * 8);
	__type(key, struct vip_key);
	__type(value, struct vip_info);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_ARRAY);
		__uint(max_entries, TABLE_ROWS);
		__type(key, __u32);
		__type(value, struct row);
	});
} tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS * 8);
	__type(key, struct addr_key);
	__type(value, __u8);
} bound SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIP_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} vip_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* The next-hop cache (fib.h): private to the program, never pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct nh_entry);
} nh_cache SEC(".maps");

/* Full BTF for the types bpf2go exports to Go (-type). */
const struct row *unused_row __attribute__((unused));
const struct vip_key *unused_vip_key __attribute__((unused));
const struct addr_key *unused_addr_key __attribute__((unused));
const enum stat *unused_stat __attribute__((unused));
const enum limits *unused_limits __attribute__((unused));
const enum backend_flags *unused_backend_flags __attribute__((unused));
const enum config_flags *unused_config_flags __attribute__((unused));

static __always_inline int count(__u32 id, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &id);

	if (c)
		*c += 1;
	return verdict;
}

static __always_inline void vip_key_of(struct vip_key *k, const struct flow *f)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (f->family == 4) {
		*(__u32 *)k->addr = f->dst[0];
	} else {
		copy16(k->addr, f->dst);
	}
	k->proto = f->proto;
	k->family = f->family;
	k->port = f->vip_port;
}

/* maybe_vip: false only when vip_filter is maintained and f's destination's
 * bit is clear, so the two VIP lookups can be skipped. */
static __always_inline int maybe_vip(const struct dp_config *cfg, const struct flow *f)
{
	__u32 bit, word;
	__u64 *w;

	if (!(cfg->flags & DP_F_VIP_FILTER))
		return 1;
	bit = vip_filter_bit(f);
	word = bit >> 6;
	w = bpf_map_lookup_elem(&vip_filter, &word);
	if (!w)
		return 1;
	return (*w >> (bit & 63)) & 1;
}

/* fib_drop: the verdict for a failed route lookup (a BPF_FIB_LKUP_RET_*
 * code other than SUCCESS and NO_NEIGH), counted by its reason. */
static __always_inline int fib_drop(long rc)
{
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
		return count(STAT_DROP_FIB_FWD_DISABLED, XDP_DROP);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return count(STAT_DROP_TOO_BIG, XDP_DROP);
	return count(STAT_DROP_FIB, XDP_DROP);
}

static __always_inline int tx_verdict(struct xdp_md *ctx, __u32 out_ifindex, __u32 stat_tx,
				      __u32 stat_redirect)
{
	if (out_ifindex == ctx->ingress_ifindex)
		return count(stat_tx, XDP_TX);
	count(stat_redirect, 0);
	return bpf_redirect(out_ifindex, 0);
}

/*
 * Encapsulates the frame (l2_len bytes of L2 header, then the inner IP packet
 * of family inner_family) listing hops [b0, b1] (b1 may be NULL) towards
 * hops[next_hop]: b0 (next_hop 0, a director's usual encapsulation) or b1
 * (next_hop 1: the local primary's second chance, which needs two hops).
 * dst_idx is the backend slot of the destination.
 */
static __always_inline int encap(struct xdp_md *ctx, __u32 l2_len, __u8 inner_family,
				 __u32 dst_idx, const struct backend *b0, const struct backend *b1,
				 __u8 next, const struct dp_config *cfg, __u32 hash)
{
	struct nh_entry *nh;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 fam = b0->family;
	__u32 nhops = 1, elen, inner_len, ip_len;
	const __u8 *src = fam == 4 ? cfg->addr4 : cfg->addr6;
	const struct backend *dst = b0;
	int no_neigh = 0;
	long rc;

	if (b1 && b1->family == fam && b1 != b0)
		nhops = 2;
	if (next) {
		if (!b1 || nhops != 2)
			return count(STAT_DROP_ENCAP, XDP_DROP);
		dst = b1;
	}
	elen = encap_len(fam, nhops);
	inner_len = frame_len(data, data_end) - l2_len;
	if (inner_len > INNER_LEN_MAX)
		return count(STAT_DROP_TOO_BIG, XDP_DROP);

	nh = bpf_map_lookup_elem(&nh_cache, &dst_idx);
	/* dst_idx indexes backends too, so the entry exists; tell the verifier. */
	if (!nh)
		return count(STAT_DROP_NO_BACKEND, XDP_DROP);
	rc = next_hop(ctx, nh, fib_ifindex(ctx, cfg), dst, src, inner_len + elen);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		no_neigh = 1;
	else if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_drop(rc);

	if (bpf_xdp_adjust_head(ctx, -(int)elen))
		return count(STAT_DROP_ENCAP, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* l2_len and elen are bounded already: tell the verifier. */
	if (l2_len > L2_LEN_MAX || elen > ENCAP_LEN_MAX)
		return count(STAT_DROP_ENCAP, XDP_DROP);
	if (data + elen + L2_LEN_MAX > data_end)
		return count(STAT_DROP_ENCAP, XDP_DROP);
	copy_l2(data, data + elen, l2_len);
	if (!no_neigh)
		set_macs(data, nh->dmac, nh->smac);

	void *l3 = data + l2_len;
	struct udp_hdr *udp;
	struct gue_hdr *gue;

	if (l3 + elen > data_end)
		return count(STAT_DROP_ENCAP, XDP_DROP);
	if (fam == 4) {
		set_ethertype(data, l2_len, 4);
		outer_ip4(l3, inner_len + elen, cfg->addr4, dst->addr);
		ip_len = sizeof(struct ip4_hdr);
	} else {
		set_ethertype(data, l2_len, 6);
		outer_ip6(l3, inner_len + elen - sizeof(struct ip6_hdr), cfg->addr6, dst->addr, hash);
		ip_len = sizeof(struct ip6_hdr);
	}
	udp = l3 + ip_len;
	outer_udp_gue(udp, inner_len + elen - ip_len, gue_port(cfg), hash,
		      (elen - ip_len - sizeof(*udp) - GUE_BASE_LEN) / 4, inner_family, next, nhops);
	gue = (void *)(udp + 1);
	if (fam == 4) {
		__u8 *hops = (void *)(gue + 1);

		if ((void *)(hops + 4 * MAX_HOPS) > data_end)
			return count(STAT_DROP_ENCAP, XDP_DROP);
		copy4(hops, b0->addr);
		if (nhops == 2)
			copy4(hops + 4, b1->addr);
	} else {
		__u8 *hops = (void *)(gue + 1);

		if ((void *)(hops + 16 * MAX_HOPS) > data_end)
			return count(STAT_DROP_ENCAP, XDP_DROP);
		copy16(hops, b0->addr);
		if (nhops == 2)
			copy16(hops + 16, b1->addr);
	}
	if (no_neigh)
		return count(STAT_DIRECTOR_NO_NEIGH, XDP_PASS);
	return tx_verdict(ctx, nh->out_ifindex, STAT_DIRECTOR_TX, STAT_DIRECTOR_REDIRECT);
}

static __always_inline int is_bound(const __u8 *addr, __u8 family)
{
	struct addr_key k = {};

	if (family == 4)
		copy4(k.addr, addr);
	else
		copy16(k.addr, addr);
	k.family = family;
	return bpf_map_lookup_elem(&bound, &k) != NULL;
}

/*
 * local_second_chance: whether a packet whose row's primary is this node (b0,
 * VIP bound) goes to the secondary b1 instead of the local stack: a TCP
 * segment without SYN, not a fragment or ICMP error, that this node does not
 * own, with a secondary that is another node on the same underlay family.
 * l4 is the TCP header's offset.
 */
static __always_inline int local_second_chance(struct xdp_md *ctx, const struct flow *f,
					       __u32 l2_len, __u32 l4, __u32 p_idx, __u32 s_idx,
					       const struct backend *b0, const struct backend *b1)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *tcp;

	if (f->proto != IPPROTO_TCP || f->frag || f->icmp || (f->tcp_flags & TCP_SYN))
		return 0;
	if (!b1 || s_idx == p_idx || (b1->flags & BACKEND_LOCAL) || b1->family != b0->family)
		return 0;
	if (l2_len > L2_LEN_MAX || l4 > DEEP_OFF_MAX)
		return 0;
	tcp = data + l4;
	if ((void *)(tcp + PORTS_LEN) > data_end)
		return 0;
	/* Truncated: the stack drops it anyway; pass as before. */
	return owns_tcp(ctx, f->family, f->src, f->dst, data + l2_len, tcp, data_end) == TCP_NOT_OWNED;
}

static __always_inline int director(struct xdp_md *ctx, struct flow *f, __u32 l2_len, __u32 l4,
				    const struct dp_config *cfg)
{
	struct vip_key key;
	struct vip_info *vi;
	struct backend *b0, *b1;
	struct row *r;
	void *table;
	__u32 hash, idx, p_idx, s_idx, dst_idx;
	__u8 inner_family = f->family, next = 0;

	if (!maybe_vip(cfg, f))
		return count(f->frag == FRAG_LATER ? STAT_PASS_FRAGMENT : STAT_PASS_NON_VIP, XDP_PASS);
	vip_key_of(&key, f);
	/* Later fragments have vip_port 0: they match port-0 VIPs only. */
	vi = bpf_map_lookup_elem(&vips, &key);
	if (!vi && key.port) {
		key.port = 0;
		vi = bpf_map_lookup_elem(&vips, &key);
	}
	if (!vi)
		return count(f->frag == FRAG_LATER ? STAT_PASS_FRAGMENT : STAT_PASS_NON_VIP, XDP_PASS);

	table = bpf_map_lookup_elem(&tables, &vi->id);
	if (!table)
		return count(STAT_DROP_NO_TABLE, XDP_DROP);
	hash = flow_hash(f, cfg->hash_seed);
	_Static_assert((TABLE_ROWS & (TABLE_ROWS - 1)) == 0, "a table is indexed by the hash's low bits");
	idx = hash & (TABLE_ROWS - 1);
	r = bpf_map_lookup_elem(table, &idx);
	if (!r)
		return count(STAT_DROP_NO_TABLE, XDP_DROP);
	p_idx = r->primary;
	s_idx = r->secondary;
	b0 = bpf_map_lookup_elem(&backends, &p_idx);
	b1 = bpf_map_lookup_elem(&backends, &s_idx);
	if (!b0 || !b0->family)
		return count(STAT_DROP_NO_BACKEND, XDP_DROP);
	if (b1 && !b1->family)
		b1 = NULL;

	dst_idx = p_idx;
	if (b0->flags & BACKEND_LOCAL) {
		if (is_bound((__u8 *)f->dst, f->family)) {
			if (!local_second_chance(ctx, f, l2_len, l4, p_idx, s_idx, b0, b1))
				return count(STAT_DIRECTOR_LOCAL_PASS, XDP_PASS);
			/* A flow the secondary holds: what a second chance
			 * here would send it. */
			count(STAT_DIRECTOR_LOCAL_SECOND_CHANCE, 0);
			next = 1;
			dst_idx = s_idx;
		} else {
			/* Never hand a VIP packet to a stack that does not own it. */
			if (!b1 || (b1->flags & BACKEND_LOCAL))
				return count(STAT_DROP_LOCAL_NOT_BOUND, XDP_DROP);
			b0 = b1;
			dst_idx = s_idx;
			b1 = NULL;
		}
	} else if (b1 && (b1->flags & BACKEND_LOCAL) && !is_bound((__u8 *)f->dst, f->family)) {
		/* The second hop must accept what it gets (invariant 2). */
		b1 = NULL;
	}
	if (f->icmp)
		count(STAT_DIRECTOR_ICMP, 0);
	return encap(ctx, l2_len, inner_family, dst_idx, b0, b1, next, cfg, hash);
}

/* Second chance: send the GUE packet on to hops[next_hop + 1]. */
static __always_inline int forward(struct xdp_md *ctx, __u32 lookup_if, __u32 l2_len, __u8 ofam,
				   __u32 gue_off)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib;
	struct gue_hdr *gue;
	__u8 nh, *hop, *l3;
	__u32 hop_off;
	long rc;

	if (gue_off > GUE_OFF_MAX || l2_len > L2_LEN_MAX)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	gue = data + gue_off;
	if ((void *)(gue + 1) > data_end)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	nh = gue->next_hop + 1;
	if (nh >= MAX_HOPS_RX)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	hop_off = gue_off + sizeof(*gue) + gue_hop_len(ofam) * (__u32)nh;
	if (hop_off > GUE_END_MAX)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	hop = data + hop_off;
	if ((void *)(hop + HOP_LEN_MAX) > data_end)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	l3 = data + l2_len;
	if (ofam == 4) {
		struct ip4_hdr *ip = (void *)l3;

		if ((void *)(ip + 1) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		if (ip->ttl <= 1)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		rc = fib_outer(ctx, &fib, lookup_if, 4, ip->saddr, hop, bpf_ntohs(ip->tot_len));
		if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return fib_drop(rc);
		/* A hop like a router's: TTL down, destination rewritten. */
		ip->ttl--;
		copy4(ip->daddr, hop);
		ip->check = ip4_csum(ip);
	} else {
		struct ip6_hdr *ip6 = (void *)l3;

		if ((void *)(ip6 + 1) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		if (ip6->hop_limit <= 1)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		rc = fib_outer(ctx, &fib, lookup_if, 6, ip6->saddr, hop, bpf_ntohs(ip6->payload_len) + sizeof(*ip6));
		if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return fib_drop(rc);
		ip6->hop_limit--;
		copy16(ip6->daddr, hop);
	}
	gue->next_hop = nh;
	/* The UDP checksum is not updated: forwarded packets carry 0. */
	{
		/* A store helper: the compiler turns pointer arithmetic back
		 * from gue into a negative packet offset the verifier rejects. */
		__u16 zero16 = 0;

		if (bpf_xdp_store_bytes(ctx, gue_off - 2, &zero16, sizeof(zero16)))
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + sizeof(struct eth_hdr) > data_end)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return count(STAT_BACKEND_FORWARD_NO_NEIGH, XDP_PASS);
	set_macs(data, fib.dmac, fib.smac);
	return tx_verdict(ctx, fib.ifindex, STAT_BACKEND_FORWARD_TX, STAT_BACKEND_FORWARD_REDIRECT);
}

/*
 * Backend role: a GUE packet for this node, decapsulated and passed, or sent
 * on to the next hop (forward) when this node does not own its TCP flow.
 * gue_off is the offset of the GUE header, udp_len the outer UDP length
 * field (read by the caller: computing the UDP header back from gue_off
 * gives a negative packet offset the verifier rejects).
 */
static __always_inline int backend(struct xdp_md *ctx, const struct dp_config *cfg, __u32 l2_len,
				   __u8 ofam, __u32 gue_off, __u32 udp_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct gue_hdr *gue;
	__u32 hop_size = gue_hop_len(ofam), inner_off, hlen, outer_len;
	__u32 isrc[4], idst[4], ihl, l4 = 0;
	__u8 ifam, tcp_flags = 0, iproto;
	int is_tcp = 0;

	if (gue_off > GUE_OFF_MAX || l2_len > L2_LEN_MAX)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	{
		/* A truncated packet must not be forwarded or passed up. */
		__u32 len = frame_len(data, data_end) - l2_len, ip_len;
		void *l3 = data + l2_len;

		if (l3 + sizeof(struct ip6_hdr) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		if (ofam == 4)
			ip_len = bpf_ntohs(((struct ip4_hdr *)l3)->tot_len);
		else
			ip_len = bpf_ntohs(((struct ip6_hdr *)l3)->payload_len) + sizeof(struct ip6_hdr);
		if (ip_len > len || ip_len < gue_off - l2_len + sizeof(*gue))
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		/* UDP length: the rest of the IP packet. */
		if (udp_len != ip_len - (gue_off - sizeof(struct udp_hdr) - l2_len))
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	}
	gue = data + gue_off;
	if ((void *)(gue + 1) > data_end)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	if (gue->ver_c_hlen & GUE_VER_C_MASK || gue->priv_type != 0)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	hlen = gue->ver_c_hlen & GUE_HLEN_MASK;
	if (gue->hop_count > MAX_HOPS_RX || gue->next_hop >= gue->hop_count ||
	    hlen * 4 != GUE_BASE_LEN + hop_size * gue->hop_count)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	if (gue->proto == IPPROTO_IPIP)
		ifam = 4;
	else if (gue->proto == IPPROTO_IPV6)
		ifam = 6;
	else
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	inner_off = gue_off + GUE_BASE_LEN + hlen * 4;
	if (inner_off > GUE_END_MAX)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);

	__builtin_memset(idst, 0, sizeof(idst));
	if (ifam == 4) {
		struct ip4_hdr *ip = data + inner_off;

		if ((void *)(ip + 1) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		ihl = ip4_hdr_len(ip);
		if (!ihl)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		copy4(idst, ip->daddr);
		iproto = ip->proto;
		if (iproto == IPPROTO_TCP && !(ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))) {
			is_tcp = 1;
			l4 = inner_off + ihl;
			copy4(isrc, ip->saddr);
		}
	} else {
		struct ip6_hdr *ip6 = data + inner_off;

		if ((void *)(ip6 + 1) > data_end || !ip6_hdr_ok(ip6))
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		copy16(idst, ip6->daddr);
		iproto = ip6->nexthdr;
		if (iproto == IPPROTO_TCP) {
			is_tcp = 1;
			l4 = inner_off + sizeof(*ip6);
			copy16(isrc, ip6->saddr);
		}
	}
	if (!is_bound((__u8 *)idst, ifam))
		return count(STAT_DROP_LOOP_GUARD, XDP_DROP);

	/* Second chance: an established flow this node has no socket for. */
	if (is_tcp && gue->next_hop + 1 < gue->hop_count && l4 < DEEP_OFF_MAX) {
		__u8 *tcp = data + l4;

		if ((void *)(tcp + (TCP_FLAGS_OFF + 1)) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		tcp_flags = tcp[TCP_FLAGS_OFF];
		if (!(tcp_flags & TCP_SYN)) {
			enum tcp_owner owner;

			owner = owns_tcp(ctx, ifam, isrc, idst, data + inner_off, tcp, data_end);
			if (owner == TCP_TRUNCATED)
				return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
			if (owner == TCP_NOT_OWNED)
				return forward(ctx, fib_ifindex(ctx, cfg), l2_len, ofam, gue_off);
		}
	}

	/* Decapsulate: move the L2 header up to the inner packet. */
	outer_len = inner_off - l2_len;
	if (l2_len > L2_LEN_MAX || outer_len > GUE_END_MAX || outer_len < OUTER_LEN_MIN)
		return count(STAT_DROP_ENCAP, XDP_DROP);
	if (data + l2_len + outer_len > data_end || data + L2_LEN_MAX > data_end)
		return count(STAT_DROP_ENCAP, XDP_DROP);
	{
		void *dst = data + outer_len;

		if (dst + L2_LEN_MAX > data_end)
			return count(STAT_DROP_ENCAP, XDP_DROP);
		copy_l2(dst, data, l2_len);
		set_ethertype(dst, l2_len, ifam);
	}
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return count(STAT_DROP_ENCAP, XDP_DROP);
	return count(STAT_BACKEND_DECAP, XDP_PASS);
}

SEC("xdp")
int vipd_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct dp_config *cfg;
	struct flow f;
	__u32 zero = 0, l2_len = 0, l4;
	__u16 proto;

	proto = parse_l2(data, data_end, &l2_len);
	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return count(STAT_PASS_NON_VIP, XDP_PASS);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return count(STAT_PASS_NON_VIP, XDP_PASS);
	if (l2_len > L2_LEN_MAX)
		return count(STAT_PASS_NON_VIP, XDP_PASS);

	__builtin_memset(&f, 0, sizeof(f));
	if (proto == bpf_htons(ETH_P_IP)) {
		struct ip4_hdr *ip = data + l2_len;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		ihl = ip4_hdr_len(ip);
		if (!ihl)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		f.family = 4;
		f.proto = ip->proto;
		f.src[0] = *(__u32 *)ip->saddr;
		f.dst[0] = *(__u32 *)ip->daddr;
		if (ip->frag_off & bpf_htons(IP_OFFSET))
			f.frag = FRAG_LATER;
		else if (ip->frag_off & bpf_htons(IP_MF))
			f.frag = FRAG_FIRST;
		l4 = l2_len + ihl;
	} else {
		struct ip6_hdr *ip6 = data + l2_len;

		if ((void *)(ip6 + 1) > data_end)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if (!ip6_hdr_ok(ip6))
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		f.family = 6;
		f.proto = ip6->nexthdr;
		copy16(f.src, ip6->saddr);
		copy16(f.dst, ip6->daddr);
		l4 = skip_ip6_ext(data, data_end, l2_len + sizeof(*ip6), &f.proto, &f.frag);
		if (!l4)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
	}

	if (f.proto == IPPROTO_UDP && !f.frag) {
		struct udp_hdr *udp = data + l4;
		int ours;

		if (l4 > HDR_OFF_MAX)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if ((void *)(udp + 1) > data_end)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if (f.family == 4)
			ours = f.dst[0] == *(__u32 *)cfg->addr4;
		else
			ours = addr16_eq(f.dst, cfg->addr6);
		if (ours && udp->dport == bpf_htons(gue_port(cfg))) {
			return backend(ctx, cfg, l2_len, f.family, l4 + sizeof(*udp), bpf_ntohs(udp->len));
		}
	}

	if (f.proto == IPPROTO_TCP || f.proto == IPPROTO_UDP) {
		if (read_ports(data, data_end, l4, &f) != PARSE_OK)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
	} else if ((f.proto == IPPROTO_ICMP && f.family == 4) ||
		   (f.proto == IPPROTO_ICMPV6 && f.family == 6)) {
		struct icmp_hdr *icmp = data + l4;

		if (f.frag || l4 > HDR_OFF_MAX)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if ((void *)(icmp + 1) > data_end)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if (!is_icmp_error(f.family, icmp->type))
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if (parse_icmp_inner(data, data_end, l4 + sizeof(*icmp), &f) != PARSE_OK)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
	} else {
		return count(STAT_PASS_NON_VIP, XDP_PASS);
	}
	return director(ctx, &f, l2_len, l4, cfg);
}

char _license[] SEC("license") = "Dual BSD/GPL";
