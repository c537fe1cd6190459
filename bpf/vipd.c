//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * vipd.c: the node's XDP program, director and backend in one.
 *
 * Director: Ethernet, up to two VLAN tags, IPv4 (options honoured) or IPv6
 * (extension headers skipped up to MAX_EXT_HDRS), TCP/UDP, ICMP errors by
 * their inner tuple -> VIP lookup (port, then port 0; fragments by address
 * and protocol) -> flow hash -> row of the VIP's table -> GUE encapsulation
 * towards the primary, the secondary as the alternate -> XDP_TX.
 *
 * Backend: UDP to this node's GUE port from an allowed source -> the inner
 * destination must be a bound VIP (else drop: the loop guard) -> TCP non-SYN
 * without a local socket and an alternate left -> second chance to it;
 * otherwise decapsulate and XDP_PASS. A GUE control message of vipd's probe
 * type is answered with XDP_TX.
 *
 * Everything else is XDP_PASS untouched.
 *
 * This file holds the maps and the roles (director, backend, forward,
 * probe); the steps they share are in headers by topic: packet.h (wire
 * formats, word copies), parse.h (L2 to the flow), hash.h (flow hash, IPv4
 * checksum), fib.h (next hops), encap.h (GUE), icmp.h ("too big" answers),
 * sock.h (socket ownership). vipd.h is the contract with the Go loader.
 *
 * Rules worth knowing (also in docs/design.md):
 *
 * GUE is GLB's format (encap.h): the director sends to the primary with the
 * alternates only (the secondary) in the hop list and next_hop 0. A node
 * that cannot use a packet sends it to hops[next_hop], with its own address
 * as the outer source, and increments next_hop; once next_hop >= hop_count
 * it handles the packet itself.
 *
 * Trust boundary: with DP_F_GUE_TRUST (the loader sets it once it knows the
 * cluster's members), GUE is decapsulated, forwarded or answered only when
 * its outer source is a member or in `directors`, lists at most
 * max_hops_rx alternates, and has a next_hop a forwarding member could have
 * written (0, or from a member with hops[next_hop - 1] this node); it is
 * forwarded only to a member. Everything else is dropped and counted by its
 * reason. An inner packet with a spoofed source is only
 * accepted from a trusted sender, like any other.
 *
 * Fragments: every fragment of a fragmented packet (IPv4 MF or offset != 0,
 * IPv6 fragment header) is hashed on (src, dst, proto) with ports 0. A
 * first fragment matches the VIP by its port, then port 0; a non-first
 * fragment carries no port and matches the VIP's VIP_KEY_FRAGMENTS entry
 * for its protocol, so every fragment of a datagram takes the same row of
 * the same table. Non-first fragments of no VIP are passed untouched and
 * counted (STAT_PASS_FRAGMENT).
 *
 * Fast parse (process): TCP or UDP in IPv4 without options or fragments,
 * or in IPv6 without extension headers, whole headers, is parsed straight
 * through and steered by its own copy of the director, where fragments and
 * ICMP errors are compiled out; it decides exactly as the general parse
 * (TestFastParseMatchesGeneral), which handles everything else.
 *
 * Short headers: a TCP header under 20 bytes, a UDP header under 8, an IP
 * length beyond the frame (STAT_PASS_SHORT_L4), or an ICMP error quoting
 * under 8 bytes of L4 (STAT_PASS_ICMP_SHORT_QUOTE) is passed untouched,
 * never encapsulated.
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
 *
 * VIP lookups are cached per CPU (vip_cache), keyed by what they were
 * looked up with, with whether the VIP is bound; the loader bumps vip_gen
 * after every change to vips4/vips6 and to a bound flag in vip_addrs,
 * which retires the whole cache at once.
 *
 * The trust boundary's answers for allowed GUE sources are cached per CPU
 * the same way (trust_cache); the loader bumps trust_gen after every
 * change to members4/members6/directors.
 *
 * Path MTU: a packet that would exceed the path MTU once encapsulated is
 * answered with ICMP "fragmentation needed" (IPv4 with DF) or ICMPv6
 * "packet too big" carrying the MTU less the encapsulation, from the VIP,
 * XDP_TX back to the client's router (icmp.h; STAT_DIRECTOR_ICMP_TOO_BIG),
 * at most dp_config.icmp_rate per second per CPU
 * (STAT_DROP_TOO_BIG_RATELIMITED). IPv4 without DF, ICMP errors and
 * second-chance forwards cannot be answered: dropped (STAT_DROP_TOO_BIG).
 *
 * Second chance: the outer destination becomes hops[next_hop], the outer
 * source this node, next_hop is incremented, the outer TTL / hop limit
 * decremented (a hop at 1 is dropped), the IPv4 header checksum recomputed
 * and the UDP checksum set to 0. A hop that is this node is not forwarded
 * to: the packet is decapsulated here (as GLB does). GUE whose IP or UDP
 * length disagrees with the frame is dropped (STAT_DROP_GUE_MALFORMED).
 *
 * A listener socket owns a non-SYN TCP segment only if it completes a SYN
 * cookie (bpf_tcp_check_syncookie): every backend listens on the VIP.
 *
 * Local primary: when the row's primary is this node and the VIP is bound,
 * the packet is passed as is, except a TCP segment without SYN (RST
 * included, as on the backend path) that this node does not own (owns_tcp,
 * the backend's check) while the row's secondary is another node: that
 * segment belongs to a flow the secondary holds (a drain or undrain moved
 * the row's primary), so it is encapsulated exactly as a second chance here
 * would send it: outer source this node, destination the secondary, hops
 * [secondary], next_hop 1; the secondary handles it (no alternate left).
 * Counted STAT_DIRECTOR_LOCAL_SECOND_CHANCE plus the encapsulation's
 * verdict. Fragments, ICMP errors and UDP are passed as before (the backend
 * path has no second chance for them either), and so is everything when the
 * secondary is this node, the same slot, or of another underlay family.
 *
 * Probes: a GUE control message (C bit) of type GUE_CTYPE_PROBE from an
 * allowed source, kind PROBE_REQUEST, is answered with XDP_TX the way it
 * came: MACs, addresses and ports swapped (the reply goes to reply_port when
 * the request names one), kind PROBE_REPLY, the rest echoed
 * (STAT_PROBE_REPLY). A PROBE_REPLY to this node's GUE port is passed to the
 * stack (STAT_PROBE_PASS): a node can check its own inbound GUE path by
 * having a peer reflect a probe to it.
 *
 * Counters: per verdict (`stats`) and per VIP (`vip_stats`: encapsulated,
 * delivered locally, second chance, loop guard; packets and bytes of the
 * VIP packet).
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
#include "icmp.h"

/*
 * Benchmark stages (dataplane/bench_test.go): a copy of this program built
 * with VIPD_STAGES returns XDP_PASS at the stage stop_stage names, so the
 * cost of each stage of the director path is the difference between two
 * copies. The production build has no trace of it.
 */
enum bench_stage {
	STAGE_NONE = 0,
	STAGE_PARSE = 1,    /* L2, IP, L4 and the VIP filter */
	STAGE_VIP = 2,      /* the flow hash and the VIP lookup (the cache) */
	STAGE_TABLE = 3,    /* the table row and its backends */
	STAGE_NEXT_HOP = 4, /* the next-hop cache */
	STAGE_ADJUST = 5,   /* bpf_xdp_adjust_head */
};
#ifdef VIPD_STAGES
volatile const __u32 stop_stage = STAGE_NONE;
#define STAGE(n)                                 \
	do {                                     \
		if (stop_stage == (n))           \
			return XDP_PASS;         \
	} while (0)
const enum bench_stage *unused_bench_stage __attribute__((unused));
/* A copy with bench_no_vip_cache set never hits the VIP cache: the
 * benchmark's figure for a miss. */
volatile const __u32 bench_no_vip_cache = 0;
/* A copy with no_fast_parse set parses every packet the general way: the
 * test that holds the fast parse to the general one runs both. */
volatile const __u32 no_fast_parse = 0;
#else
#define bench_no_vip_cache 0
#define no_fast_parse 0
#define STAGE(n) \
	do {     \
	} while (0)
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIP_KEYS);
	__type(key, struct vip4_key);
	__type(value, struct vip_info);
} vips4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIP_KEYS);
	__type(key, struct vip6_key);
	__type(value, struct vip_info);
} vips6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_TABLES);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_ARRAY);
		__uint(max_entries, TABLE_PAIRS);
		__type(key, __u32);
		__type(value, struct row_pair);
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
	__uint(max_entries, MAX_VIPS);
	__type(key, struct addr_key);
	__type(value, struct addr_info);
} vip_addrs SEC(".maps");

/* The members' underlay addresses, one map per family: a 4-byte key for
 * IPv4, hashed and compared as one word. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_MEMBERS);
	__type(key, __u32);
	__type(value, __u8);
} members4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_MEMBERS);
	__type(key, struct in6_key);
	__type(value, __u8);
} members6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_DIRECTOR_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix_key);
	__type(value, __u8);
} directors SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_counters);
} vip_stats SEC(".maps");

/* The next-hop cache (fib.h): private to the program, never pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NH_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct nh_entry);
} nh_cache SEC(".maps");

/*
 * The VIP cache: per CPU, direct-mapped, private to the program, never
 * pinned. A VIP lookup in `vips4`/`vips6` (a kernel hash map) is the
 * largest stage of the director path, twice for a port that falls back to
 * the VIP's any-port service; an entry here answers it with one inlined
 * array lookup and a few compares. An entry holds the vip_info the lookups
 * found for (family, destination, protocol, port or later fragment) and
 * the vip_gen it was filled under; the loader bumps vip_gen after every
 * change to `vips4`/`vips6`, which retires every entry at once, so an entry
 * never outlives a VIP change by more than the packets being processed at
 * that moment. Misses (no VIP) are not cached.
 *
 * An entry also answers whether the VIP is bound (`vip_addrs`, another hash
 * lookup, asked by a local primary, and by a local secondary as the
 * alternate: 1 row in N of an N-node cluster): the fill asks `vip_addrs`
 * and keeps the answer in the cached copy of vip_info.vip (VC_BOUND), so
 * the director reads it with the VIP's index, and the loader bumps vip_gen
 * after changing a bound flag too.
 */
struct vip_cache_entry {
	/* gen and key are compared as one word (vip_resolve): keep them first. */
	__u32 gen;     /* vip_gen when filled */
	__u32 key;     /* vip_cache_key(): never 0, so a zeroed entry never matches */
	__u32 addr[4]; /* the destination as loaded; IPv4 in addr[0], the rest 0 */
	struct vip_info info;
};

/* The cached vip_info.vip: the VIP's index, VC_BOUND_KNOWN, VC_BOUND. */
#define VC_BOUND_KNOWN (1U << 31) /* VC_BOUND holds the answer (a cached copy) */
#define VC_BOUND (1U << 30)       /* the VIP is bound (ADDR_BOUND in `vip_addrs`) */
#define VC_VIP_MASK 0xFFFF
_Static_assert(MAX_VIPS <= VC_VIP_MASK + 1, "a VIP index fits under the cache's flags");

#define VIP_CACHE_BITS 12
#define VIP_CACHE_SLOTS (1 << VIP_CACHE_BITS) /* 128 KiB per CPU */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIP_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct vip_cache_entry);
} vip_cache SEC(".maps");

/* The VIP cache's generation (above), written by the loader through mmap
 * after every change to `vips4`/`vips6` and to a bound flag in `vip_addrs`. */
volatile __u32 vip_gen;

/*
 * The trust cache: per CPU, direct-mapped, private to the program, never
 * pinned. The trust boundary asks `members4`/`members6` (kernel hash maps,
 * and the `directors` trie after a miss) about the outer source of every
 * GUE packet, the largest cost of a decapsulation; an entry here answers
 * it with an inlined array lookup and a few compares. An entry holds an
 * allowed source and gue_source's answer for it (1 or 2) under the
 * trust_gen it was filled with; the loader bumps trust_gen after every
 * change to the members or the director prefixes, which retires every
 * entry at once. Sources allowed by nobody are not cached.
 */
struct trust_cache_entry {
	__u32 gen;     /* trust_gen when filled */
	__u8 family;   /* 4 or 6; 0: empty, never a packet's */
	__u8 from;     /* gue_source's answer: 1 a director prefix, 2 a member */
	__u16 pad;
	__u32 addr[4]; /* the source; IPv4 in addr[0], the rest 0 */
};

#define TRUST_CACHE_BITS 8
#define TRUST_CACHE_SLOTS (1 << TRUST_CACHE_BITS) /* 6 KiB per CPU */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TRUST_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct trust_cache_entry);
} trust_cache SEC(".maps");

/* The trust cache's generation (above), written by the loader through mmap. */
volatile __u32 trust_gen;

/* The "too big" answers' token bucket (icmp.h): private, never pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct icmp_bucket);
} icmp_limit SEC(".maps");

/* Full BTF for the types bpf2go exports to Go (-type). */
const struct row *unused_row __attribute__((unused));
const struct row_pair *unused_row_pair __attribute__((unused));
const struct vip4_key *unused_vip4_key __attribute__((unused));
const struct vip6_key *unused_vip6_key __attribute__((unused));
const struct addr_key *unused_addr_key __attribute__((unused));
const struct addr_info *unused_addr_info __attribute__((unused));
const struct prefix_key *unused_prefix_key __attribute__((unused));
const struct vip_counters *unused_vip_counters __attribute__((unused));
const struct probe_body *unused_probe_body __attribute__((unused));
const enum stat *unused_stat __attribute__((unused));
const enum vip_stat *unused_vip_stat __attribute__((unused));
const enum limits *unused_limits __attribute__((unused));
const enum backend_flags *unused_backend_flags __attribute__((unused));
const enum config_flags *unused_config_flags __attribute__((unused));
const enum addr_flags *unused_addr_flags __attribute__((unused));
const enum vip_key_flags *unused_vip_key_flags __attribute__((unused));
const enum probe_kind *unused_probe_kind __attribute__((unused));
const enum vip_filter_bits *unused_vip_filter_bits __attribute__((unused));
_Static_assert(sizeof(struct probe_body) == PROBE_LEN, "PROBE_LEN is the probe body");

static __always_inline int count(__u32 id, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &id);

	if (c)
		*c += 1;
	return verdict;
}

/* count_vip adds a packet of bytes to the VIP's counter which (VIP_STAT_*). */
static __always_inline void count_vip(__u32 vip, __u32 which, __u32 bytes)
{
	struct vip_counters *s = bpf_map_lookup_elem(&vip_stats, &vip);

	if (s && which < VIP_STAT_MAX) {
		s->c[which].packets += 1;
		s->c[which].bytes += bytes;
	}
}

/* vip_lookup: the VIP entry of f's destination and protocol with port and
 * flags (VIP_KEY_FRAGMENTS), in the map of its family. */
static __always_inline struct vip_info *vip_lookup(const struct flow *f, __u16 port, __u8 flags)
{
	if (f->family == 4) {
		struct vip4_key k = {.port = port, .proto = f->proto, .flags = flags};

		*(__u32 *)k.addr = f->dst[0];
		return bpf_map_lookup_elem(&vips4, &k);
	} else {
		struct vip6_key k = {.port = port, .proto = f->proto, .flags = flags};

		copy16(k.addr, f->dst);
		return bpf_map_lookup_elem(&vips6, &k);
	}
}

static __always_inline void addr_key_of(struct addr_key *k, const void *addr, __u8 family)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (family == 4)
		copy4(k->addr, addr);
	else
		copy16(k->addr, addr);
	k->family = family;
}

/* The `vip_addrs` entry of a VIP address, NULL if it has none. */
static __always_inline struct addr_info *vip_addr(const void *addr, __u8 family)
{
	struct addr_key k;

	addr_key_of(&k, addr, family);
	return bpf_map_lookup_elem(&vip_addrs, &k);
}

static __always_inline int is_bound(const void *addr, __u8 family)
{
	struct addr_info *a = vip_addr(addr, family);

	return a && (a->flags & ADDR_BOUND);
}

/*
 * vip_bound: whether f's destination, the VIP whose vip_info.vip vip_resolve
 * gave as vw, is bound: the VIP cache's answer when vw is its copy
 * (VC_BOUND_KNOWN), else `vip_addrs`'.
 */
static __always_inline int vip_bound(__u32 vw, const struct flow *f)
{
	if (vw & VC_BOUND_KNOWN)
		return (vw & VC_BOUND) != 0;
	return is_bound(f->dst, f->family);
}

/* vip_cache_key: the word of a VIP cache entry besides the address: the
 * port the VIP is looked up with, the protocol, the family (never 0) and
 * whether f is a later fragment (which matches the fragment entry). */
static __always_inline __u32 vip_cache_key(const struct flow *f)
{
	return (__u32)f->vip_port | (__u32)f->proto << 16 | (__u32)f->family << 24 |
	       (f->frag == FRAG_LATER ? 1U << 31 : 0);
}

/*
 * vip_resolve: the vip_info of f's VIP (NULL if none), through the VIP
 * cache: on a miss, looked up by port, then any port (bits: the VIP
 * filter's, see vip_bits), or by the fragment entry for a later fragment,
 * and the answer cached.
 */
static __always_inline struct vip_info *vip_resolve(const struct flow *f, __u32 bits)
{
	struct vip_cache_entry *ce;
	struct vip_info *vi;
	__u32 key = vip_cache_key(f), fold = f->dst[0], slot, gen;

	if (f->family == 6)
		fold ^= f->dst[1] ^ f->dst[2] ^ f->dst[3];
	slot = ((fold ^ key) * 0x9E3779B1U) >> (32 - VIP_CACHE_BITS);
	/* The generation before the lookups: an entry filled from a map
	 * the loader changes meanwhile carries the old one. */
	gen = vip_gen;
	asm volatile("" ::: "memory");
	ce = bpf_map_lookup_elem(&vip_cache, &slot);
	/* gen and key as one word: the entry starts with them, in that order. */
	if (ce && *(__u64 *)ce == ((__u64)key << 32 | gen) && ce->addr[0] == f->dst[0] &&
	    (f->family == 4 || (ce->addr[1] == f->dst[1] && ce->addr[2] == f->dst[2] && ce->addr[3] == f->dst[3])) &&
	    !bench_no_vip_cache)
		return &ce->info;

	if (f->frag == FRAG_LATER) {
		/* No ports: the VIP's entry for its later fragments. */
		vi = vip_lookup(f, 0, VIP_KEY_FRAGMENTS);
	} else if (!(bits & VF_PORTS) || !f->vip_port) {
		/* No VIP here has a port-specific service: port 0 at once. */
		vi = vip_lookup(f, 0, 0);
	} else {
		vi = vip_lookup(f, f->vip_port, 0);
		if (!vi && (bits & VF_ANY_PORT))
			vi = vip_lookup(f, 0, 0);
	}
	if (!vi || !ce)
		return vi;
	ce->gen = gen;
	ce->key = key;
	copy16(ce->addr, f->dst);
	ce->info = *vi;
	ce->info.vip |= VC_BOUND_KNOWN | (is_bound(f->dst, f->family) ? VC_BOUND : 0);
	return &ce->info;
}

/*
 * vip_bits: f's destination's vip_filter bits (VF_*), 0 when it is surely
 * no VIP and the lookups can be skipped; both bits when the filter is not
 * maintained.
 */
static __always_inline __u32 vip_bits(const struct dp_config *cfg, const struct flow *f)
{
	__u32 slot, word;
	__u64 *w;

	if (!(cfg->flags & DP_F_VIP_FILTER))
		return VF_PORTS | VF_ANY_PORT;
	slot = vip_filter_slot(f);
	word = slot >> 5;
	w = bpf_map_lookup_elem(&vip_filter, &word);
	if (!w)
		return VF_PORTS | VF_ANY_PORT;
	return (*w >> ((slot & 31) * 2)) & (VF_PORTS | VF_ANY_PORT);
}

/* is_member: whether addr (family's) is a cluster member's underlay address. */
static __always_inline int is_member(const void *addr, __u8 family)
{
	if (family == 4) {
		__u32 k = *(const __u32 *)addr;

		return bpf_map_lookup_elem(&members4, &k) != NULL;
	} else {
		struct in6_key k;

		copy16(k.addr, addr);
		return bpf_map_lookup_elem(&members6, &k) != NULL;
	}
}

/* gue_source_lookup: gue_source's answer from the maps themselves. */
static __always_inline int gue_source_lookup(const struct dp_config *cfg, const void *src, __u8 family)
{
	struct prefix_key k;

	if (is_member(src, family))
		return 2;
	if (!(cfg->flags & DP_F_DIRECTORS))
		return 0;
	__builtin_memset(&k, 0, sizeof(k));
	k.prefixlen = 128;
	if (family == 4) {
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		copy4(k.addr + 12, src);
	} else {
		copy16(k.addr, src);
	}
	return bpf_map_lookup_elem(&directors, &k) ? 1 : 0;
}

/*
 * gue_source: who sent a GUE packet, by its outer source: 2 a member, 1 a
 * director prefix, 0 nobody allowed. Without DP_F_GUE_TRUST (no members
 * known yet) everyone counts as a member. Answered by the trust cache when
 * it can.
 */
static __always_inline int gue_source(const struct dp_config *cfg, const void *src, __u8 family)
{
	struct trust_cache_entry *ce;
	__u32 a[4], fold, slot, gen;
	int from;

	if (!(cfg->flags & DP_F_GUE_TRUST))
		return 2;
	if (family == 4) {
		a[0] = *(const __u32 *)src;
		a[1] = a[2] = a[3] = 0;
	} else {
		copy16(a, src);
	}
	fold = a[0] ^ a[1] ^ a[2] ^ a[3];
	slot = (fold * 0x9E3779B1U) >> (32 - TRUST_CACHE_BITS);
	/* The generation before the lookups: an entry filled from a map
	 * the loader changes meanwhile carries the old one. */
	gen = trust_gen;
	asm volatile("" ::: "memory");
	ce = bpf_map_lookup_elem(&trust_cache, &slot);
	if (ce && ce->gen == gen && ce->family == family && ce->addr[0] == a[0] &&
	    (family == 4 || (ce->addr[1] == a[1] && ce->addr[2] == a[2] && ce->addr[3] == a[3])))
		return ce->from;
	from = gue_source_lookup(cfg, src, family);
	if (!from || !ce)
		return from;
	ce->gen = gen;
	ce->family = family;
	ce->from = from;
	copy16(ce->addr, a);
	return from;
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
 * too_big answers a VIP packet that would exceed the path MTU (mtu, the
 * IP MTU of the path less the encapsulation) with ICMP, when that is
 * allowed and the rate limit has a token; otherwise drops it. Either way
 * counted.
 */
static __always_inline int too_big(struct xdp_md *ctx, const struct flow *f, __u32 l2_len,
				   const struct dp_config *cfg, __u32 mtu)
{
	struct icmp_bucket *b;
	__u32 zero = 0;
	int rc;

	/* Never an ICMP error about an ICMP error; IPv4 without DF must be
	 * fragmented, which XDP cannot do. */
	if (f->icmp || (f->family == 4 && !f->df) || mtu < ICMP_MTU_MIN4)
		return count(STAT_DROP_TOO_BIG, XDP_DROP);
	b = bpf_map_lookup_elem(&icmp_limit, &zero);
	if (!b || !icmp_allowed(b, cfg->icmp_rate ? cfg->icmp_rate : ICMP_RATE_DEFAULT))
		return count(STAT_DROP_TOO_BIG_RATELIMITED, XDP_DROP);
	rc = send_too_big(ctx, f, l2_len, mtu);
	if (rc == -1)
		return count(STAT_DROP_TOO_BIG, XDP_DROP);
	if (rc)
		return count(STAT_DROP_ENCAP, XDP_DROP);
	return count(STAT_DIRECTOR_ICMP_TOO_BIG, XDP_TX);
}

/*
 * encap pushes the outer headers in front of the VIP packet f (after
 * l2_len bytes of L2 header) and sends it towards dst (backend slot
 * dst_idx), listing alt as the alternate when not NULL, with next_hop
 * next: 0 for a director's usual encapsulation, 1 for the local primary's
 * second chance (dst and alt both the secondary). second says to count the
 * packet as a second chance of the VIP too.
 */
static __always_inline int encap(struct xdp_md *ctx, const struct flow *f, __u32 l2_len,
				 __u32 dst_idx, const struct backend *dst, const struct backend *alt,
				 __u8 next, const struct dp_config *cfg, __u32 hash, __u32 vip, int second,
				 const __u8 fam, const __u32 nalt)
{
	struct nh_entry *nh;
	void *data, *data_end;
	__u32 elen, inner_len, ip_len, mtu = 0, slot, ingress;
	const __u8 *src = fam == 4 ? cfg->addr4 : cfg->addr6;
	int no_neigh = 0;
	long rc;

	elen = encap_len(fam, nalt);
	inner_len = f->len - l2_len;
	if (inner_len > INNER_LEN_MAX)
		return count(STAT_DROP_TOO_BIG, XDP_DROP);

	slot = dst_idx & (NH_CACHE_SLOTS - 1);
	nh = bpf_map_lookup_elem(&nh_cache, &slot);
	if (!nh)
		return count(STAT_DROP_NO_BACKEND, XDP_DROP);
	ingress = ctx->ingress_ifindex;
	rc = next_hop(ctx, nh, ingress, cfg, dst, src, inner_len + elen, &mtu);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		no_neigh = 1;
	else if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return too_big(ctx, f, l2_len, cfg, mtu > elen ? mtu - elen : 0);
	else if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_drop(rc);
	STAGE(STAGE_NEXT_HOP);

	if (bpf_xdp_adjust_head(ctx, -(int)elen))
		return count(STAT_DROP_ENCAP, XDP_DROP);
	STAGE(STAGE_ADJUST);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* l2_len and elen are bounded already: tell the verifier. One check
	 * covers every write below, the hops included: they end at l3 + elen,
	 * and l2_len <= L2_LEN_MAX. It never fails: an inner IP header (20
	 * bytes at least) follows the outer ones. */
	if (l2_len > L2_LEN_MAX || elen > ENCAP_LEN_MAX)
		return count(STAT_DROP_ENCAP, XDP_DROP);
	if (data + elen + L2_LEN_MAX > data_end)
		return count(STAT_DROP_ENCAP, XDP_DROP);
	if (no_neigh)
		copy_macs(data, data + elen);
	else
		set_macs12(data, nh->dmac);
	/* VLAN tags, then the outer ethertype (set_ethertype below). */
	if (l2_len >= 18)
		copy_l2_tags(data, data + elen, l2_len);

	void *l3 = data + l2_len;
	struct udp_hdr *udp;
	struct gue_hdr *gue;

	if (fam == 4) {
		set_ethertype(data, l2_len, 4);
		/* No next hop cached for an unresolved neighbour: the sum
		 * from scratch. */
		outer_ip4(l3, inner_len + elen, cfg->addr4, dst->addr,
			  no_neigh ? ip4_sum(cfg->addr4, dst->addr) : nh->ip4_sum);
		ip_len = sizeof(struct ip4_hdr);
	} else {
		set_ethertype(data, l2_len, 6);
		outer_ip6(l3, inner_len + elen - sizeof(struct ip6_hdr), cfg->addr6, dst->addr, hash);
		ip_len = sizeof(struct ip6_hdr);
	}
	udp = l3 + ip_len;
	outer_udp_gue(udp, inner_len + elen - ip_len, gue_port(cfg), hash,
		      (elen - ip_len - sizeof(*udp) - GUE_BASE_LEN) / 4, f->family, next, nalt);
	gue = (void *)(udp + 1);
	if (nalt) {
		__u8 *hops = (void *)(gue + 1);

		if (fam == 4)
			copy4(hops, alt->addr);
		else
			copy16(hops, alt->addr);
	}
	count_vip(vip, VIP_STAT_ENCAP, inner_len);
	if (second)
		count_vip(vip, VIP_STAT_SECOND_CHANCE, inner_len);
	if (no_neigh)
		return count(STAT_DIRECTOR_NO_NEIGH, XDP_PASS);
	if (nh->out_ifindex == ingress)
		return count(STAT_DIRECTOR_TX, XDP_TX);
	count(STAT_DIRECTOR_REDIRECT, 0);
	return bpf_redirect(nh->out_ifindex, 0);
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
				    const struct dp_config *cfg, __u32 bits)
{
	struct vip_info *vi;
	struct backend *b0, *b1;
	const struct backend *dst, *alt;
	struct row_pair *rp;
	struct row *r;
	void *table;
	__u32 hash, idx, p_idx, s_idx, dst_idx, vip, vw;
	__u8 next = 0;
	int second = 0;

	/* The hash first: the row, the backends and the next hop wait on
	 * its chain, which runs alongside the VIP lookup this way. */
	hash = flow_hash(f, cfg->hash_seed);
	vi = vip_resolve(f, bits);
	if (!vi)
		return count(f->frag == FRAG_LATER ? STAT_PASS_FRAGMENT : STAT_PASS_NON_VIP, XDP_PASS);
	STAGE(STAGE_VIP);

	vw = vi->vip;
	vip = vw & VC_VIP_MASK;
	table = bpf_map_lookup_elem(&tables, &vi->table);
	if (!table)
		return count(STAT_DROP_NO_TABLE, XDP_DROP);
	_Static_assert((TABLE_ROWS & (TABLE_ROWS - 1)) == 0, "a table is indexed by the hash's low bits");
	_Static_assert(TABLE_PAIRS * 2 == TABLE_ROWS, "a table element holds two rows");
	idx = (hash & (TABLE_ROWS - 1)) >> 1;
	rp = bpf_map_lookup_elem(table, &idx);
	if (!rp)
		return count(STAT_DROP_NO_TABLE, XDP_DROP);
	r = &rp->r[hash & 1];
	p_idx = r->primary;
	s_idx = r->secondary;
	b0 = bpf_map_lookup_elem(&backends, &p_idx);
	b1 = bpf_map_lookup_elem(&backends, &s_idx);
	if (!b0 || !b0->family)
		return count(STAT_DROP_NO_BACKEND, XDP_DROP);
	if (b1 && (!b1->family || s_idx == p_idx))
		b1 = NULL;

	dst = b0;
	alt = b1;
	dst_idx = p_idx;
	if (b0->flags & BACKEND_LOCAL) {
		if (vip_bound(vw, f)) {
			if (!local_second_chance(ctx, f, l2_len, l4, p_idx, s_idx, b0, b1)) {
				count_vip(vip, VIP_STAT_LOCAL, f->len - l2_len);
				return count(STAT_DIRECTOR_LOCAL_PASS, XDP_PASS);
			}
			/* A flow the secondary holds: what a second chance
			 * here would send it. */
			count(STAT_DIRECTOR_LOCAL_SECOND_CHANCE, 0);
			dst = b1;
			next = 1;
			dst_idx = s_idx;
			second = 1;
		} else {
			/* Never hand a VIP packet to a stack that does not own it. */
			if (!b1 || (b1->flags & BACKEND_LOCAL))
				return count(STAT_DROP_LOCAL_NOT_BOUND, XDP_DROP);
			dst = b1;
			alt = NULL;
			dst_idx = s_idx;
		}
	} else if (b1 && (b1->family != b0->family ||
			  ((b1->flags & BACKEND_LOCAL) && !vip_bound(vw, f)))) {
		/* An alternate must be reachable on the same underlay, and
		 * accept what it gets (invariant 2). */
		alt = NULL;
	}
	STAGE(STAGE_TABLE);
	if (f->icmp)
		count(STAT_DIRECTOR_ICMP, 0);
	/* The underlay family as a constant (dst->family, 4 or 6): one copy
	 * of the encapsulation for each, as process does for the packet's. */
	if (dst->family == 4)
		return alt ? encap(ctx, f, l2_len, dst_idx, dst, alt, next, cfg, hash, vip, second, 4, 1)
			   : encap(ctx, f, l2_len, dst_idx, dst, NULL, next, cfg, hash, vip, second, 4, 0);
	return alt ? encap(ctx, f, l2_len, dst_idx, dst, alt, next, cfg, hash, vip, second, 6, 1)
		   : encap(ctx, f, l2_len, dst_idx, dst, NULL, next, cfg, hash, vip, second, 6, 0);
}

/*
 * forward: second chance, the GUE packet goes on to hops[next_hop]
 * (hop_off, already checked to be a member and not this node) with this
 * node (self, the old destination) as the outer source and next_hop + 1.
 */
static __always_inline int forward(struct xdp_md *ctx, __u32 lookup_if, __u32 l2_len, __u8 ofam,
				   __u32 gue_off, __u32 hop_off, __u32 vip, __u32 inner_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib;
	struct gue_hdr *gue;
	__u8 *hop, *l3;
	long rc;

	if (gue_off > GUE_OFF_MAX || l2_len > L2_LEN_MAX || hop_off > GUE_END_MAX)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	gue = data + gue_off;
	if ((void *)(gue + 1) > data_end)
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
		rc = fib_outer(ctx, &fib, lookup_if, 4, ip->daddr, hop, bpf_ntohs(ip->tot_len));
		if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return fib_drop(rc);
		/* As GLB: from this node (the old destination) to the hop. */
		ip->ttl--;
		copy4(ip->saddr, ip->daddr);
		copy4(ip->daddr, hop);
		ip->check = ip4_csum(ip);
	} else {
		struct ip6_hdr *ip6 = (void *)l3;

		if ((void *)(ip6 + 1) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		if (ip6->hop_limit <= 1)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		rc = fib_outer(ctx, &fib, lookup_if, 6, ip6->daddr, hop, bpf_ntohs(ip6->payload_len) + sizeof(*ip6));
		if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return fib_drop(rc);
		ip6->hop_limit--;
		copy16(ip6->saddr, ip6->daddr);
		copy16(ip6->daddr, hop);
	}
	gue->next_hop++;
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
	count_vip(vip, VIP_STAT_SECOND_CHANCE, inner_len);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return count(STAT_BACKEND_FORWARD_NO_NEIGH, XDP_PASS);
	set_macs(data, fib.dmac, fib.smac);
	return tx_verdict(ctx, fib.ifindex, STAT_BACKEND_FORWARD_TX, STAT_BACKEND_FORWARD_REDIRECT);
}

/* csum_replace16 updates a 16-bit one's complement checksum for a 16-bit
 * field changed from old to new (RFC 1624, eqn. 3). */
static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u32)(__u16)~old + new;

	return csum_fold(sum);
}

/*
 * probe answers a data-path probe request (the GUE control message at
 * gue_off, from an allowed source) in place and sends it back the way it
 * came; a probe reply to this node's GUE port is passed to the stack.
 * udp_off is the outer UDP header's offset.
 */
static __always_inline int probe(struct xdp_md *ctx, __u32 l2_len, __u8 ofam, __u32 udp_off,
				 __u32 gue_off, __u32 ip_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct probe_body *body;
	struct gue_hdr *gue;
	struct udp_hdr *udp;
	__u8 mac[ETH_ALEN];
	__u16 sport, dport;

	if (gue_off > GUE_OFF_MAX || udp_off > GUE_OFF_MAX || l2_len > L2_LEN_MAX)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	gue = data + gue_off;
	udp = data + udp_off;
	body = data + gue_off + GUE_BASE_LEN;
	if ((void *)(body + 1) > data_end || (void *)(udp + 1) > data_end)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	if (gue->ver_c_hlen != GUE_C_BIT || gue->proto != GUE_CTYPE_PROBE || gue->flags ||
	    gue_off - l2_len + GUE_BASE_LEN + PROBE_LEN > ip_len || body->magic != bpf_htonl(PROBE_MAGIC))
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	if (body->kind == PROBE_REPLY)
		return count(STAT_PROBE_PASS, XDP_PASS);
	if (body->kind != PROBE_REQUEST)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);

	/* Back the way it came: MACs, addresses and ports swapped. */
	if (data + sizeof(struct eth_hdr) > data_end)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	copy6(mac, data);
	copy6(data, data + ETH_ALEN);
	copy6(data + ETH_ALEN, mac);
	if (ofam == 4) {
		struct ip4_hdr *ip = data + l2_len;
		__u32 a;

		if ((void *)(ip + 1) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		a = *(__u32 *)ip->saddr;
		copy4(ip->saddr, ip->daddr);
		*(__u32 *)ip->daddr = a;
		ip->ttl = OUTER_TTL;
		ip->check = ip4_csum(ip);
	} else {
		struct ip6_hdr *ip6 = data + l2_len;
		__u32 a[4];

		if ((void *)(ip6 + 1) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		copy16(a, ip6->saddr);
		copy16(ip6->saddr, ip6->daddr);
		copy16(ip6->daddr, a);
		ip6->hop_limit = OUTER_TTL;
	}
	sport = udp->sport;
	dport = body->reply_port ? body->reply_port : sport;
	/* Swapping addresses and ports leaves the UDP checksum as it is;
	 * the reply port and the kind change it. */
	if (udp->check) {
		__u16 c = csum_replace16(udp->check, sport, dport);
		__u16 old_kind = *(__u16 *)&body->kind, new_kind;

		body->kind = PROBE_REPLY;
		new_kind = *(__u16 *)&body->kind;
		c = csum_replace16(c, old_kind, new_kind);
		udp->check = c ? c : 0xffff;
	} else {
		body->kind = PROBE_REPLY;
	}
	udp->sport = udp->dport;
	udp->dport = dport;
	return count(STAT_PROBE_REPLY, XDP_TX);
}

/*
 * Backend role: a GUE packet for this node (UDP header at udp_off), from
 * an allowed source: decapsulated and passed, sent on to the next hop
 * (forward) when this node does not own its TCP flow, or answered when it
 * is a probe.
 */
static __always_inline int backend(struct xdp_md *ctx, const struct dp_config *cfg, __u32 l2_len,
				   __u8 ofam, __u32 udp_off)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct gue_hdr *gue;
	struct udp_hdr *udp;
	__u32 hop_size = gue_hop_len(ofam), gue_off = udp_off + sizeof(*udp), inner_off, hlen;
	__u32 isrc[4], idst[4], ihl, l4 = 0, ip_len, inner_len, nhops, next, max_hops;
	__u8 ifam, tcp_flags = 0, iproto, *self, *src;
	struct addr_info *ai;
	int is_tcp = 0, from;

	if (udp_off > GUE_OFF_MAX || l2_len > L2_LEN_MAX)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	{
		/* A truncated packet must not be forwarded or passed up. */
		__u32 len = frame_len(data, data_end) - l2_len;
		void *l3 = data + l2_len;

		if (l3 + sizeof(struct ip6_hdr) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		if (ofam == 4) {
			ip_len = bpf_ntohs(((struct ip4_hdr *)l3)->tot_len);
			src = ((struct ip4_hdr *)l3)->saddr;
			self = ((struct ip4_hdr *)l3)->daddr;
		} else {
			ip_len = bpf_ntohs(((struct ip6_hdr *)l3)->payload_len) + sizeof(struct ip6_hdr);
			src = ((struct ip6_hdr *)l3)->saddr;
			self = ((struct ip6_hdr *)l3)->daddr;
		}
		if (ip_len > len || ip_len < gue_off - l2_len + GUE_BASE_LEN)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		udp = data + udp_off;
		if ((void *)(udp + 1) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		/* UDP length: the rest of the IP packet. */
		if (bpf_ntohs(udp->len) != ip_len - (udp_off - l2_len))
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	}
	/* The trust boundary, before anything of the packet is believed. */
	from = gue_source(cfg, src, ofam);
	if (!from)
		return count(STAT_DROP_GUE_UNTRUSTED_SOURCE, XDP_DROP);
	gue = data + gue_off;
	if ((void *)gue + GUE_BASE_LEN > data_end)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	if (gue->ver_c_hlen & GUE_VER_MASK)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	if (gue->ver_c_hlen & GUE_C_BIT)
		return probe(ctx, l2_len, ofam, udp_off, gue_off, ip_len);
	if ((void *)(gue + 1) > data_end || ip_len < gue_off - l2_len + sizeof(*gue))
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	if (gue->priv_type != 0)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	hlen = gue->ver_c_hlen & GUE_HLEN_MASK;
	nhops = gue->hop_count;
	next = gue->next_hop;
	if (hlen * 4 != GUE_BASE_LEN + hop_size * nhops)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	max_hops = cfg->max_hops_rx ? cfg->max_hops_rx : MAX_HOPS;
	if (nhops > max_hops || nhops > MAX_HOPS_RX)
		return count(STAT_DROP_GUE_TOO_MANY_HOPS, XDP_DROP);
	if (next > nhops)
		return count(STAT_DROP_GUE_BAD_NEXT_HOP, XDP_DROP);
	if (gue->proto == IPPROTO_IPIP)
		ifam = 4;
	else if (gue->proto == IPPROTO_IPV6)
		ifam = 6;
	else
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	inner_off = gue_off + GUE_BASE_LEN + hlen * 4;
	if (inner_off > GUE_END_MAX || inner_off - l2_len > ip_len)
		return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
	inner_len = ip_len - (inner_off - l2_len);
	if (next) {
		/* A preset next_hop only as a forwarding member writes it: it
		 * sent to hops[next_hop - 1], this node. (Whether a hop is a
		 * member is asked before forwarding to it.) */
		__u32 prev_off = gue_off + sizeof(*gue) + hop_size * (next - 1);
		__u8 *h = data + prev_off;

		if (from != 2)
			return count(STAT_DROP_GUE_BAD_NEXT_HOP, XDP_DROP);
		if (prev_off > GUE_END_MAX || (void *)(h + HOP_LEN_MAX) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		if (!(ofam == 4 ? *(__u32 *)h == *(__u32 *)self : addr16_eq(h, self)))
			return count(STAT_DROP_GUE_BAD_NEXT_HOP, XDP_DROP);
	}

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
	ai = vip_addr(idst, ifam);
	if (!ai || !(ai->flags & ADDR_BOUND)) {
		if (ai)
			count_vip(ai->vip, VIP_STAT_LOOP_GUARD, inner_len);
		return count(STAT_DROP_LOOP_GUARD, XDP_DROP);
	}

	/* Second chance: an established flow this node has no socket for. */
	if (is_tcp && next < nhops && l4 < DEEP_OFF_MAX) {
		__u8 *tcp = data + l4;

		if ((void *)(tcp + (TCP_FLAGS_OFF + 1)) > data_end)
			return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
		tcp_flags = tcp[TCP_FLAGS_OFF];
		if (!(tcp_flags & TCP_SYN)) {
			enum tcp_owner owner;
			__u32 hop_off = gue_off + sizeof(*gue) + hop_size * next;
			__u8 *hop = data + hop_off;

			owner = owns_tcp(ctx, ifam, isrc, idst, data + inner_off, tcp, data_end);
			if (owner == TCP_TRUNCATED)
				return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
			if (hop_off > GUE_END_MAX || (void *)(hop + HOP_LEN_MAX) > data_end)
				return count(STAT_DROP_GUE_MALFORMED, XDP_DROP);
			/* Never to this node itself (GLB does the same): handled here. */
			if (owner == TCP_NOT_OWNED &&
			    !(ofam == 4 ? *(__u32 *)hop == *(__u32 *)self : addr16_eq(hop, self))) {
				/* Only ever to a member. */
				if ((cfg->flags & DP_F_GUE_TRUST) && !is_member(hop, ofam))
					return count(STAT_DROP_GUE_HOP_NOT_MEMBER, XDP_DROP);
				return forward(ctx, fib_ifindex(ctx, cfg), l2_len, ofam, gue_off, hop_off,
					       ai->vip, inner_len);
			}
		}
	}

	/* Decapsulate: move the L2 header up to the inner packet. */
	{
		__u32 outer_len = inner_off - l2_len, vip = ai->vip;

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
		count_vip(vip, VIP_STAT_LOCAL, inner_len);
	}
	return count(STAT_BACKEND_DECAP, XDP_PASS);
}

/*
 * process handles an IP packet of family (4 or 6, a constant: the compiler
 * builds one copy of everything below for each, so the IPv4 path carries
 * no IPv6 work; measured 4-10% faster per path) after l2_len bytes of L2
 * header. data and data_end come from the caller: read again from ctx
 * here, clang spills data_end as 32 bits, which the verifier rejects.
 */
static __always_inline int process(struct xdp_md *ctx, void *data, void *data_end,
				   const struct dp_config *cfg, __u32 l2_len, const __u8 family)
{
	struct flow f;
	__u32 l4, bits;
	enum parse_result pr;

	/*
	 * The fast parse: the common packet, TCP or UDP in IPv4 without
	 * options or fragmentation, or in IPv6 without extension headers,
	 * whole headers inside the IP length and the frame. It sets every
	 * field of f exactly as the general parse below would and takes the
	 * same decisions; anything else goes to the general parse, which
	 * starts over. Its own copy of the director sees frag and icmp as
	 * constants 0, so the questions about fragments and ICMP errors are
	 * compiled out of the path most packets take (~4 ns of ~46, see
	 * "Fast parse" in docs/design.md). TestFastParseMatchesGeneral runs
	 * every frame through both and compares.
	 */
	if (no_fast_parse)
		goto general;
	if (family == 4) {
		struct ip4_hdr *ip = data + l2_len;
		__u8 *p = (void *)(ip + 1);
		__u16 fo;

		if ((void *)(p + TCP_HDR_MIN) > data_end || ip->ver_ihl != 0x45)
			goto general;
		fo = ip->frag_off;
		if (fo & bpf_htons(IP_MF | IP_OFFSET))
			goto general;
		f.proto = ip->proto;
		if (f.proto != IPPROTO_TCP && f.proto != IPPROTO_UDP)
			goto general;
		f.len = frame_len(data, data_end);
		f.ip_end = l2_len + bpf_ntohs(ip->tot_len);
		if (f.ip_end > f.len ||
		    l2_len + sizeof(*ip) + (f.proto == IPPROTO_TCP ? TCP_HDR_MIN : UDP_HDR_LEN) > f.ip_end)
			goto general;
		f.family = 4;
		f.frag = 0;
		f.icmp = 0;
		f.df = (fo & bpf_htons(IP_DF)) != 0;
		f.src[0] = load32(ip->saddr);
		f.dst[0] = load32(ip->daddr);
		f.src[1] = f.src[2] = f.src[3] = 0;
		f.dst[1] = f.dst[2] = f.dst[3] = 0;
		/* The filter as early as it can be: its lookup's chain runs
		 * alongside the rest of the parse. */
		bits = vip_bits(cfg, &f);
		if (f.proto == IPPROTO_UDP && f.dst[0] == load32(cfg->addr4) &&
		    ((struct udp_hdr *)p)->dport == bpf_htons(gue_port(cfg)))
			return backend(ctx, cfg, l2_len, 4, l2_len + sizeof(*ip));
		if (!bits)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		f.ports = load32(p);
		f.vip_port = bpf_ntohs(((__be16 *)p)[1]);
		f.tcp_flags = f.proto == IPPROTO_TCP ? p[TCP_FLAGS_OFF] : 0;
		STAGE(STAGE_PARSE);
		return director(ctx, &f, l2_len, l2_len + sizeof(*ip), cfg, bits);
	} else {
		struct ip6_hdr *ip6 = data + l2_len;
		__u8 *p = (void *)(ip6 + 1);

		if ((void *)(p + TCP_HDR_MIN) > data_end || !ip6_hdr_ok(ip6))
			goto general;
		f.proto = ip6->nexthdr;
		if (f.proto != IPPROTO_TCP && f.proto != IPPROTO_UDP)
			goto general;
		f.len = frame_len(data, data_end);
		f.ip_end = l2_len + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		if (f.ip_end > f.len ||
		    l2_len + sizeof(*ip6) + (f.proto == IPPROTO_TCP ? TCP_HDR_MIN : UDP_HDR_LEN) > f.ip_end)
			goto general;
		f.family = 6;
		f.frag = 0;
		f.icmp = 0;
		f.df = 0;
		copy16(f.src, ip6->saddr);
		copy16(f.dst, ip6->daddr);
		bits = vip_bits(cfg, &f);
		if (f.proto == IPPROTO_UDP && addr16_eq(f.dst, cfg->addr6) &&
		    ((struct udp_hdr *)p)->dport == bpf_htons(gue_port(cfg)))
			return backend(ctx, cfg, l2_len, 6, l2_len + sizeof(*ip6));
		if (!bits)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		f.ports = load32(p);
		f.vip_port = bpf_ntohs(((__be16 *)p)[1]);
		f.tcp_flags = f.proto == IPPROTO_TCP ? p[TCP_FLAGS_OFF] : 0;
		STAGE(STAGE_PARSE);
		return director(ctx, &f, l2_len, l2_len + sizeof(*ip6), cfg, bits);
	}
general:
	__builtin_memset(&f, 0, sizeof(f));
	f.family = family;
	f.len = frame_len(data, data_end);
	if (family == 4) {
		struct ip4_hdr *ip = data + l2_len;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		ihl = ip4_hdr_len(ip);
		if (!ihl)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		f.proto = ip->proto;
		f.src[0] = load32(ip->saddr);
		f.dst[0] = load32(ip->daddr);
		if (ip->frag_off & bpf_htons(IP_OFFSET))
			f.frag = FRAG_LATER;
		else if (ip->frag_off & bpf_htons(IP_MF))
			f.frag = FRAG_FIRST;
		f.df = (ip->frag_off & bpf_htons(IP_DF)) != 0;
		f.ip_end = l2_len + bpf_ntohs(ip->tot_len);
		l4 = l2_len + ihl;
	} else {
		struct ip6_hdr *ip6 = data + l2_len;

		if ((void *)(ip6 + 1) > data_end)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if (!ip6_hdr_ok(ip6))
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		f.proto = ip6->nexthdr;
		copy16(f.src, ip6->saddr);
		copy16(f.dst, ip6->daddr);
		f.ip_end = l2_len + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		l4 = skip_ip6_ext(data, data_end, l2_len + sizeof(*ip6), &f.proto, &f.frag);
		if (!l4)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
	}

	if (f.proto == IPPROTO_UDP && !f.frag) {
		struct udp_hdr *udp = data + l4;
		int ours;

		if (l4 > HDR_OFF_MAX)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		/* A UDP header cut short is no GUE; for a VIP, read_ports says so. */
		if ((void *)(udp + 1) > data_end)
			goto not_gue;
		if (family == 4)
			ours = f.dst[0] == *(__u32 *)cfg->addr4;
		else
			ours = addr16_eq(f.dst, cfg->addr6);
		if (ours && udp->dport == bpf_htons(gue_port(cfg)))
			return backend(ctx, cfg, l2_len, family, l4);
	}
not_gue:
	/* Most traffic that is not for a VIP stops here, ports unread. */
	bits = vip_bits(cfg, &f);
	if (!bits)
		return count(f.frag == FRAG_LATER ? STAT_PASS_FRAGMENT : STAT_PASS_NON_VIP, XDP_PASS);

	if (f.proto == IPPROTO_TCP || f.proto == IPPROTO_UDP) {
		if (f.ip_end > f.len)
			return count(STAT_PASS_SHORT_L4, XDP_PASS);
		pr = read_ports(data, data_end, l4, &f);
		if (pr == PARSE_SHORT)
			return count(STAT_PASS_SHORT_L4, XDP_PASS);
		if (pr != PARSE_OK)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
	} else if ((family == 4 && f.proto == IPPROTO_ICMP) || (family == 6 && f.proto == IPPROTO_ICMPV6)) {
		struct icmp_hdr *icmp = data + l4;

		if (f.frag)
			return count(f.frag == FRAG_LATER ? STAT_PASS_FRAGMENT : STAT_PASS_NON_VIP, XDP_PASS);
		if (l4 > HDR_OFF_MAX)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if ((void *)(icmp + 1) > data_end)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if (!is_icmp_error(family, icmp->type))
			return count(STAT_PASS_NON_VIP, XDP_PASS);
		if (f.ip_end > f.len)
			return count(STAT_PASS_ICMP_SHORT_QUOTE, XDP_PASS);
		pr = parse_icmp_inner(data, data_end, l4 + sizeof(*icmp), &f);
		if (pr == PARSE_SHORT)
			return count(STAT_PASS_ICMP_SHORT_QUOTE, XDP_PASS);
		if (pr != PARSE_OK)
			return count(STAT_PASS_NON_VIP, XDP_PASS);
	} else {
		return count(f.frag == FRAG_LATER ? STAT_PASS_FRAGMENT : STAT_PASS_NON_VIP, XDP_PASS);
	}
	STAGE(STAGE_PARSE);
	return director(ctx, &f, l2_len, l4, cfg, bits);
}

SEC("xdp")
int vipd_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct dp_config *cfg;
	__u32 zero = 0, l2_len = 0;
	__u16 proto;

	proto = parse_l2(data, data_end, &l2_len);
	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return count(STAT_PASS_NON_VIP, XDP_PASS);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return count(STAT_PASS_NON_VIP, XDP_PASS);
	if (l2_len > L2_LEN_MAX)
		return count(STAT_PASS_NON_VIP, XDP_PASS);
	if (proto == bpf_htons(ETH_P_IP))
		return process(ctx, data, data_end, cfg, l2_len, 4);
	return process(ctx, data, data_end, cfg, l2_len, 6);
}

char _license[] SEC("license") = "Dual BSD/GPL";
