/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * vipd.h: the contract between the XDP program (bpf/vipd.c) and its Go
 * loader (package dataplane). bpf2go exports the structs and the enums with
 * -type, so the Go side always reads this file's truth: a number Go needs is
 * an enum constant here, never a #define copied into Go.
 *
 * All multi-byte fields are host order unless the name says otherwise;
 * addresses are network-order bytes.
 */
#ifndef VIPD_H
#define VIPD_H

#include <linux/types.h>

/* Sizes and defaults (bpf2go -type limits). */
enum limits {
	MAX_VIPS = 1024,
	MAX_BACKENDS = 4096,
	TABLE_ROWS = 65536, /* rows per VIP table; a power of two */
	VIP_FILTER_WORDS = 1024, /* __u64 words of vip_filter (below) */
	GUE_PORT_DEFAULT = 19523,
	MAX_HOPS = 2, /* hops a director puts in a GUE header */
};

/* A VIP: IPv4 in addr[0..3], the rest 0. port 0 = any port. */
struct vip_key {
	__u8 addr[16];
	__u16 port;  /* host order, 0 = any */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* 4 or 6 */
};

struct vip_info {
	__u32 id;    /* index into `tables` */
	__u32 flags; /* reserved, 0 */
};

/* One row of a VIP's forwarding table: indexes into `backends`. */
struct row {
	__u32 primary;
	__u32 secondary;
};

/* backend.flags (bpf2go -type backend_flags). */
enum backend_flags {
	BACKEND_LOCAL = 1, /* the backend is this node */
};

struct backend {
	__u8 addr[16]; /* underlay address: IPv4 in addr[0..3] */
	__u8 family;   /* 4 or 6; 0 = empty slot */
	__u8 flags;    /* BACKEND_LOCAL */
	__u16 pad;
};

/* Key of the bound set: the VIPs this node accepts decapsulated traffic
 * for (the loop guard, docs/design.md invariant 3). */
struct addr_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

/* dp_config.flags (bpf2go -type config_flags). */
enum config_flags {
	DP_F_VIP_FILTER = 1, /* vip_filter is maintained: skip VIP lookups on a clear bit */
};

/*
 * vip_filter: an ARRAY of VIP_FILTER_WORDS __u64, a bitmap over VIP addresses
 * that lets non-VIP traffic skip the two hash lookups (port, then port 0).
 * Bit index of an address: XOR its four little-endian 32-bit words (IPv4:
 * one word, the rest 0), fold f ^ (f >> 16), keep the low 16 bits; word
 * index >> 6, bit index & 63. The loader sets the bit of every VIP address
 * BEFORE inserting the VIP and rebuilds the bitmap after deleting one, then
 * sets DP_F_VIP_FILTER. Without the flag every packet is looked up.
 */

/* This node's config, the single element of the `config` array. */
struct dp_config {
	__u8 addr4[4];  /* IPv4 underlay address (GUE source/destination) */
	__u8 addr6[16]; /* IPv6 underlay address */
	__u16 gue_port; /* host order; 0 means GUE_PORT_DEFAULT */
	__u16 flags;    /* DP_F_* */
	__u32 hash_seed;
	/*
	 * The device bpf_fib_lookup looks up from; 0 = the ingress device. The
	 * kernel requires forwarding on that device, so the loader sets lo's
	 * ifindex (forwarding on lo only) and the uplink keeps forwarding off:
	 * see "Lookup device" in vipd.c. Appended: earlier offsets unchanged.
	 */
	__u32 fib_ifindex;
};

/*
 * One per-CPU __u64 counter per verdict and reason; the Go side sums over
 * CPUs. Append only: the numbering is part of the pinned-map contract.
 */
enum stat {
	STAT_PASS_NON_VIP = 0,        /* not VIP and not GUE to us: untouched */
	STAT_DIRECTOR_TX = 1,         /* encapsulated, XDP_TX */
	STAT_DIRECTOR_REDIRECT = 2,   /* encapsulated, egress is another ifindex */
	STAT_DIRECTOR_LOCAL_PASS = 3, /* primary is this node, VIP bound: passed as is */
	STAT_DIRECTOR_NO_NEIGH = 4,   /* encapsulated frame passed: neighbour unresolved */
	STAT_DROP_NO_TABLE = 5,       /* VIP without a table */
	STAT_DROP_NO_BACKEND = 6,     /* row points at an empty backend slot */
	STAT_DROP_LOCAL_NOT_BOUND = 7, /* primary is us, VIP not bound, no usable secondary */
	STAT_DROP_FIB = 8,            /* bpf_fib_lookup failed (no route, blackhole...) */
	STAT_DROP_FIB_FWD_DISABLED = 9, /* fib lookup refused: forwarding off on the lookup device */
	STAT_DROP_ENCAP = 10,         /* growing or shrinking the frame failed */
	STAT_BACKEND_DECAP = 11,      /* GUE stripped, inner packet passed */
	STAT_BACKEND_FORWARD_TX = 12, /* second chance: sent on to the next hop */
	STAT_BACKEND_FORWARD_REDIRECT = 13,
	STAT_BACKEND_FORWARD_NO_NEIGH = 14, /* forwarded frame passed: neighbour unresolved */
	STAT_DROP_LOOP_GUARD = 15,    /* decapsulated VIP not bound here */
	STAT_DROP_GUE_MALFORMED = 16, /* UDP to our GUE port that is not valid GUE */
	STAT_PASS_FRAGMENT = 17,      /* non-first fragment, no port-0 VIP matched: passed untouched */
	STAT_DIRECTOR_ICMP = 18,      /* ICMP error steered by its inner tuple (also counted as tx) */
	STAT_DROP_TOO_BIG = 19,       /* encapsulated frame exceeds the egress MTU */
	/* Primary is this node, VIP bound, but a TCP non-SYN this node has no
	 * socket for: sent to the secondary as a second chance would (next_hop
	 * 1); also counted under the encapsulation's verdict (director_tx...). */
	STAT_DIRECTOR_LOCAL_SECOND_CHANCE = 20,
	STAT_MAX = 21,
};

#endif /* VIPD_H */
