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
	MAX_VIPS = 16384,      /* VIP addresses programmed or bound: per-VIP counters, `vip_addrs` */
	MAX_VIP_KEYS = 131072, /* entries of `vips4`, and of `vips6`: one per service plus one per (VIP, protocol) for later fragments */
	MAX_TABLES = 16384,    /* stored tables; VIPs with the same backends and roles share one */
	MAX_BACKENDS = 16384,  /* backend slots (distinct underlay addresses in tables); a row holds 16-bit slots */
	MAX_MEMBERS = 16384,   /* cluster members' underlay addresses (`members4`, and `members6`) */
	MAX_DIRECTOR_PREFIXES = 1024, /* extra allowed GUE sources (`directors`) */
	TABLE_ROWS = 65536,    /* rows per table; a power of two */
	TABLE_PAIRS = 32768,   /* elements per table map: two rows each (struct row_pair) */
	VIP_FILTER_WORDS = 2048, /* __u64 words of vip_filter (below): 65536 slots of 2 bits */
	GUE_PORT_DEFAULT = 19523,
	MAX_HOPS = 1,          /* alternates a director writes in a GUE header (GLB: hops = alternates only) */
	MAX_HOPS_RX = 3,       /* the most alternates a node can be told to accept (GLB's director hashing twice) */
	ICMP_RATE_DEFAULT = 1000, /* "too big" answers per second per CPU */
	ICMP_QUOTE_LEN = 128,  /* bytes of the client's packet a "too big" answer quotes */
	GUE_CTYPE_PROBE = 0x76, /* GUE control message type of a vipd data-path probe */
	PROBE_MAGIC = 0x76697064, /* "vipd", the first word of a probe body */
	PROBE_LEN = 24,        /* a probe body without padding */
};

/*
 * The keys of `vips4` and `vips6`, one map per family so an IPv4 VIP is
 * hashed and compared as 8 bytes. port 0 = any port. The loader also
 * writes, for every (VIP, protocol) it programs, one entry with port 0 and
 * VIP_KEY_FRAGMENTS: the entry a non-first fragment (no ports) matches, so
 * every fragment of a datagram reaches the VIP's table, whatever ports its
 * services name.
 */
struct vip4_key {
	__u8 addr[4];
	__u16 port;  /* host order, 0 = any */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 flags;  /* VIP_KEY_FRAGMENTS */
};

struct vip6_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 flags;
};

/* vip4_key.flags, vip6_key.flags (bpf2go -type vip_key_flags). */
enum vip_key_flags {
	VIP_KEY_FRAGMENTS = 1, /* the entry non-first fragments match */
};

struct vip_info {
	__u32 table; /* index into `tables` (shared between VIPs) */
	__u32 vip;   /* the VIP's index into `vip_stats` */
};

/* One row of a forwarding table: indexes into `backends`. */
struct row {
	__u16 primary;
	__u16 secondary;
};
_Static_assert(MAX_BACKENDS <= 65536, "a row holds 16-bit backend slots");

/*
 * An element of a table: two rows. An ARRAY map rounds its elements up to
 * 8 bytes, so a table of single 4-byte rows would take as much memory as
 * 8-byte ones. Row i is pair i / 2, half i % 2; in memory (the loader's
 * mmap) the rows are simply consecutive, 256 KiB a table.
 */
struct row_pair {
	struct row r[2];
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

/* Key of `vip_addrs`: an address of either family. */
struct addr_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

/* Key of `members6`: an IPv6 address (`members4` is keyed by the IPv4
 * address itself, a __u32 as loaded). */
struct in6_key {
	__u8 addr[16];
};

/* addr_info.flags (bpf2go -type addr_flags). */
enum addr_flags {
	ADDR_BOUND = 1, /* the VIP is bound: this node accepts decapsulated traffic for it */
};

/*
 * A `vip_addrs` value: every VIP address this node programs or binds has
 * one. ADDR_BOUND makes it part of the bound set, the loop guard
 * (docs/design.md invariant 3); vip is its per-VIP counter index, so
 * loop-guard drops are counted per VIP too.
 */
struct addr_info {
	__u32 vip;
	__u32 flags; /* ADDR_* */
};

/* Key of `directors`, an LPM trie: IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
struct prefix_key {
	__u32 prefixlen; /* 96 + the IPv4 prefix length for IPv4 */
	__u8 addr[16];
};

/* dp_config.flags (bpf2go -type config_flags). */
enum config_flags {
	DP_F_VIP_FILTER = 1, /* vip_filter is maintained: skip VIP lookups on a clear bit */
	DP_F_GUE_TRUST = 2,  /* `members4`/`members6` filled: GUE only from members or `directors`, forwards only to members */
	DP_F_DIRECTORS = 4,  /* `directors` has entries: look sources up there too */
};

/*
 * vip_filter: an ARRAY of VIP_FILTER_WORDS __u64, two bits (enum
 * vip_filter_bits) for each of 65536 slots over VIP addresses, so non-VIP
 * traffic skips the VIP lookups and a VIP with only any-port services
 * skips the port lookup. Slot of an address: XOR its four little-endian
 * 32-bit words (IPv4: one word, the rest 0), fold f ^ (f >> 16), keep the
 * low 16 bits; word index slot >> 5, bits at (slot & 31) * 2. A slot's bits
 * are the union over the VIPs in it, so a clear bit is exact. The loader
 * sets the bits of a VIP's services BEFORE inserting them and rebuilds the
 * bitmap after deleting some, then sets DP_F_VIP_FILTER. Without the flag
 * every packet is looked up, port first.
 */
enum vip_filter_bits {
	VF_PORTS = 1,    /* a VIP here has a service with a port */
	VF_ANY_PORT = 2, /* a VIP here has an any-port service */
};

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
	 * see "Lookup device" in vipd.c.
	 */
	__u32 fib_ifindex;
	__u32 icmp_rate;  /* "too big" answers per second per CPU; 0 = ICMP_RATE_DEFAULT */
	__u8 max_hops_rx; /* alternates a received GUE header may list; 0 = MAX_HOPS */
	__u8 pad[3];
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
	STAT_PASS_FRAGMENT = 17,      /* non-first fragment of no VIP: passed untouched */
	STAT_DIRECTOR_ICMP = 18,      /* ICMP error steered by its inner tuple (also counted as tx) */
	/* Too big for the path once encapsulated, and no "too big" answer is
	 * possible (IPv4 without DF, an ICMP error, a second-chance forward):
	 * dropped. */
	STAT_DROP_TOO_BIG = 19,
	/* Primary is this node, VIP bound, but a TCP non-SYN this node has no
	 * socket for: sent to the secondary as a second chance would (next_hop
	 * 1); also counted under the encapsulation's verdict (director_tx...). */
	STAT_DIRECTOR_LOCAL_SECOND_CHANCE = 20,
	/* Too big once encapsulated: answered with ICMP "fragmentation needed"
	 * / ICMPv6 "packet too big" carrying the MTU less the encapsulation
	 * (XDP_TX back to the client). */
	STAT_DIRECTOR_ICMP_TOO_BIG = 21,
	STAT_DROP_TOO_BIG_RATELIMITED = 22, /* too big, answer over icmp_rate: dropped */
	/* IP length beyond the frame, TCP header under 20 bytes, UDP under 8:
	 * passed untouched, never encapsulated. */
	STAT_PASS_SHORT_L4 = 23,
	STAT_PASS_ICMP_SHORT_QUOTE = 24, /* ICMP error quoting under 8 bytes of L4: passed, not steered */
	STAT_DROP_GUE_UNTRUSTED_SOURCE = 25, /* GUE from neither a member nor a director prefix */
	STAT_DROP_GUE_TOO_MANY_HOPS = 26,    /* more alternates than max_hops_rx */
	/* next_hop beyond hop_count, or a preset next_hop that is not what a
	 * forwarding member writes (from a non-member, or hops[next_hop-1] is
	 * not this node). */
	STAT_DROP_GUE_BAD_NEXT_HOP = 27,
	STAT_DROP_GUE_HOP_NOT_MEMBER = 28,   /* the alternate it would be forwarded to is not a cluster member */
	STAT_PROBE_REPLY = 29,               /* data-path probe answered (XDP_TX back to the sender) */
	STAT_PROBE_PASS = 30,                /* a probe reply to this node's GUE port: passed to the stack */
	STAT_MAX = 31,
};

/* Per-VIP verdicts (bpf2go -type vip_stat): the index into vip_counters.c. */
enum vip_stat {
	VIP_STAT_ENCAP = 0,         /* encapsulated by this director */
	VIP_STAT_LOCAL = 1,         /* delivered to this node's stack (local primary, decapsulated) */
	VIP_STAT_SECOND_CHANCE = 2, /* sent on to the secondary (forward, local second chance) */
	VIP_STAT_LOOP_GUARD = 3,    /* GUE for the VIP dropped here: not bound */
	VIP_STAT_MAX = 4,
};

struct vip_counter {
	__u64 packets;
	__u64 bytes; /* of the VIP packet (the inner IP packet): no L2, no encapsulation */
};

/* A `vip_stats` value, struct vip_counters (per CPU, indexed by vip_info.vip / addr_info.vip). */
struct vip_counters {
	struct vip_counter c[VIP_STAT_MAX];
};

/*
 * A data-path probe: a GUE control message (C bit set, ctype
 * GUE_CTYPE_PROBE, hlen 0) to a node's underlay address and GUE port,
 * followed by this body (big endian) and any padding. A node answers a
 * request from an allowed source with XDP_TX on the path it came by:
 * addresses, MACs and ports swapped, kind REPLY, everything else echoed.
 */
struct probe_body {
	__be32 magic;      /* PROBE_MAGIC */
	__u8 kind;         /* PROBE_REQUEST or PROBE_REPLY */
	__u8 reserved;     /* 0 */
	__be16 reply_port; /* UDP port the reply goes to; 0 = the request's source port */
	__be64 token;      /* the sender's, echoed */
	__be64 sent;       /* the sender's clock, echoed */
};

/* probe_body.kind (bpf2go -type probe_kind). */
enum probe_kind {
	PROBE_REQUEST = 1,
	PROBE_REPLY = 2,
};

#endif /* VIPD_H */
