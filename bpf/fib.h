/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * fib.h: next hops: the device bpf_fib_lookup looks up from and the
 * per-CPU next-hop cache entry.
 */
#ifndef VIPD_FIB_H
#define VIPD_FIB_H

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
	__u64 expires; /* bpf_ktime_get_coarse_ns() deadline */
	__u8 addr[16]; /* the backend address the entry is for */
	__u32 in_ifindex;
	__u32 out_ifindex;
	__u16 mtu;
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
	__u8 family;
	__u8 uses; /* the clock is read every NH_CHECK_EVERY uses */
};

#define NH_CACHE_NS 1000000000ULL
#define NH_CHECK_EVERY 16

/* The device bpf_fib_lookup looks up from (see "Lookup device" in vipd.c). */
static __always_inline __u32 fib_ifindex(const struct xdp_md *ctx, const struct dp_config *cfg)
{
	return cfg->fib_ifindex ? cfg->fib_ifindex : ctx->ingress_ifindex;
}

#endif /* VIPD_FIB_H */
