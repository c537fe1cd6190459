/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * fib.h: next hops: the device bpf_fib_lookup looks up from, the lookup for
 * an outer packet and the per-CPU next-hop cache in front of it.
 */
#ifndef VIPD_FIB_H
#define VIPD_FIB_H

#include "hash.h"
#include "packet.h"
#include "vipd.h"

/*
 * An entry of the next-hop cache (nh_cache in vipd.c, private to the
 * program): bpf_fib_lookup costs about as much as the rest of the director
 * path, so a director reuses a backend's MACs, egress and MTU for
 * NH_CACHE_NS. Per CPU, so entries are never torn. Only successful lookups
 * are cached: an unresolved neighbour is looked up again on the next packet.
 */
struct nh_entry {
	__u64 addr[2]; /* the backend address the entry is for, compared as two words */
	__u64 key;     /* nh_key(): the ingress device and the family (0: empty) */
	__u8 dmac[ETH_ALEN]; /* dmac and smac side by side: set_macs12 */
	__u8 smac[ETH_ALEN];
	__u16 mtu;
	__u8 uses;     /* the clock is read every NH_CHECK_EVERY uses */
	__u8 pad;
	__u32 out_ifindex;
	/* The outer IPv4 header's checksum, summed over everything but the
	 * length (constants, this node's and the backend's address), unfolded:
	 * a packet adds its length and folds (outer_ip4). */
	__u32 ip4_sum;
	__u64 expires; /* bpf_ktime_get_coarse_ns() deadline */
};

#define NH_CACHE_NS 1000000000ULL
#define NH_CHECK_EVERY 16
/* Entries of the per-CPU cache, indexed by backend slot modulo this: a
 * collision only costs a lookup (an entry is checked against its address). */
#define NH_CACHE_SLOTS 4096

/* nh_key: the word an entry is checked against besides the address: the
 * ingress device and the backend's family (never 0). */
static __always_inline __u64 nh_key(__u32 ingress, __u8 family)
{
	return (__u64)family << 32 | ingress;
}

/* The device bpf_fib_lookup looks up from (see "Lookup device" in vipd.c). */
static __always_inline __u32 fib_ifindex(const struct xdp_md *ctx, const struct dp_config *cfg)
{
	return cfg->fib_ifindex ? cfg->fib_ifindex : ctx->ingress_ifindex;
}

/*
 * fib_params sets a lookup's input: an outer UDP packet of tot_len bytes from
 * src to dst (family's addresses), looked up from device lookup_if. The rest
 * of *fib is the caller's: zeroed for a first lookup, the previous output
 * for the MTU probe.
 */
static __always_inline void fib_params(struct bpf_fib_lookup *fib, __u32 lookup_if, __u8 family,
				       const __u8 *src, const __u8 *dst, __u16 tot_len)
{
	fib->tot_len = tot_len;
	fib->ifindex = lookup_if;
	if (family == 4) {
		fib->family = AF_INET;
		fib->ipv4_src = *(__u32 *)src;
		fib->ipv4_dst = *(__u32 *)dst;
	} else {
		fib->family = AF_INET6;
		copy16(fib->ipv6_src, src);
		copy16(fib->ipv6_dst, dst);
	}
}

/*
 * fib_outer: the next hop of an outer packet. Returns the kernel's
 * BPF_FIB_LKUP_RET_* code: SUCCESS with MACs and egress in *fib, NO_NEIGH
 * with a route but no resolved neighbour (the caller builds the frame and
 * passes it, so the kernel resolves it), FWD_DISABLED, FRAG_NEEDED (over the
 * route's MTU), or another failure (no route, blackhole...).
 */
static __always_inline long fib_outer(struct xdp_md *ctx, struct bpf_fib_lookup *fib, __u32 lookup_if,
				     __u8 family, const __u8 *src, const __u8 *dst, __u16 tot_len)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->l4_protocol = IPPROTO_UDP;
	fib_params(fib, lookup_if, family, src, dst, tot_len);
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

/*
 * next_hop makes c, the cache entry of backend b, usable for an outer packet
 * of tot_len bytes arriving on ingress (ctx->ingress_ifindex, read once by
 * the caller): refreshed from bpf_fib_lookup (from lookup_if, see
 * fib_ifindex) when it is older than NH_CACHE_NS, or for another backend
 * address or ingress. The clock is read on every NH_CHECK_EVERY-th use only
 * (a helper call per packet is measurable here), so an expired entry
 * serves at most NH_CHECK_EVERY - 1 more packets. Returns fib_outer's code:
 * SUCCESS when c is usable, NO_NEIGH (c is not), FRAG_NEEDED when tot_len
 * exceeds the path MTU (then in *mtu), or a failure. The route is looked up
 * without a length, so a packet too big for the path still finds its route
 * and MTU: the director answers it with the MTU instead of dropping it.
 */
static __always_inline long next_hop(struct xdp_md *ctx, struct nh_entry *c, __u32 ingress,
				     const struct dp_config *cfg, const struct backend *b,
				     const __u8 *src, __u32 tot_len, __u32 *mtu)
{
	/* A map value starts 8-byte aligned; struct backend's own alignment
	 * (2) would have clang load the address 16 bits at a time. */
	const __u64 *baddr = __builtin_assume_aligned(b->addr, 8);
	struct bpf_fib_lookup fib;
	__u32 lookup_if;
	__u64 now = 0;
	long rc;

	/* An empty entry has key 0, never nh_key()'s. */
	if (c->addr[0] == baddr[0] && c->addr[1] == baddr[1] && c->key == nh_key(ingress, b->family)) {
		if (++c->uses % NH_CHECK_EVERY)
			goto hit;
		now = bpf_ktime_get_coarse_ns();
		if (c->expires > now)
			goto hit;
	}
	if (!now)
		now = bpf_ktime_get_coarse_ns();
	lookup_if = cfg->fib_ifindex ? cfg->fib_ifindex : ingress;
	rc = fib_outer(ctx, &fib, lookup_if, b->family, src, b->addr, 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc;
	__builtin_memset(c, 0, sizeof(*c));
	c->expires = now + NH_CACHE_NS;
	c->addr[0] = baddr[0];
	c->addr[1] = baddr[1];
	c->key = nh_key(ingress, b->family);
	c->out_ifindex = fib.ifindex;
	copy6(c->dmac, fib.dmac);
	copy6(c->smac, fib.smac);
	if (b->family == 4)
		c->ip4_sum = ip4_sum(src, b->addr);
	/* Learn the path MTU: an oversized probe reports it. */
	c->mtu = 0xFFFF;
	fib_params(&fib, lookup_if, b->family, src, b->addr, 0xFFFF);
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) == BPF_FIB_LKUP_RET_FRAG_NEEDED && fib.mtu_result)
		c->mtu = fib.mtu_result;
hit:
	if (tot_len > c->mtu) {
		*mtu = c->mtu;
		return BPF_FIB_LKUP_RET_FRAG_NEEDED;
	}
	return BPF_FIB_LKUP_RET_SUCCESS;
}

#endif /* VIPD_FIB_H */
