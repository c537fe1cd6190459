/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sock.h: socket ownership, whether this node's stack has a flow's TCP
 * socket (the question behind both second chances).
 */
#ifndef VIPD_SOCK_H
#define VIPD_SOCK_H

#include "packet.h"

/* Whether this node's stack owns a TCP segment (owns_tcp). */
enum tcp_owner {
	TCP_NOT_OWNED, /* no socket for it: the flow is another node's */
	TCP_OWNED,     /* a socket, or a listener whose SYN cookie it completes */
	TCP_TRUNCATED, /* too short for the cookie check (full IP and TCP headers) */
};

/*
 * tcp_tuple fills *t with the 4-tuple of the TCP segment at tcp (its ports
 * readable: the caller checked) sent from src to dst (family's addresses as
 * loaded, IPv4 in the first word) and returns the size of the tuple.
 */
static __always_inline __u32 tcp_tuple(struct bpf_sock_tuple *t, __u8 family, const __u32 *src,
				       const __u32 *dst, const void *tcp)
{
	if (family == 4) {
		t->ipv4.saddr = src[0];
		t->ipv4.daddr = dst[0];
		t->ipv4.sport = ((const __be16 *)tcp)[0];
		t->ipv4.dport = ((const __be16 *)tcp)[1];
		return sizeof(t->ipv4);
	}
	copy16(t->ipv6.saddr, src);
	copy16(t->ipv6.daddr, dst);
	t->ipv6.sport = ((const __be16 *)tcp)[0];
	t->ipv6.dport = ((const __be16 *)tcp)[1];
	return sizeof(t->ipv6);
}

/*
 * owns_tcp: whether this node's stack owns the TCP segment without SYN at
 * tcp (ports readable), src -> dst, in the IP packet at iph (family ifam):
 * some socket for it (established, request, time-wait), or a listener for
 * which it completes a SYN cookie (every backend listens on the VIP, so a
 * listener alone proves nothing). The director's local primary and the
 * backend's second chance both ask this.
 */
static __always_inline enum tcp_owner owns_tcp(struct xdp_md *ctx, __u8 ifam, const __u32 *src,
					       const __u32 *dst, void *iph, void *tcp, void *data_end)
{
	struct bpf_sock_tuple tuple = {};
	__u32 tuple_size = tcp_tuple(&tuple, ifam, src, dst, tcp);
	struct bpf_sock *sk;
	long rc;

	sk = bpf_skc_lookup_tcp(ctx, &tuple, tuple_size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TCP_NOT_OWNED;
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return TCP_OWNED;
	}
	/* The longer family's header length: one bound for both. */
	if (iph + sizeof(struct ip6_hdr) > data_end || tcp + TCP_HDR_MIN > data_end) {
		bpf_sk_release(sk);
		return TCP_TRUNCATED;
	}
	rc = bpf_tcp_check_syncookie(sk, iph, ifam == 4 ? sizeof(struct ip4_hdr) : sizeof(struct ip6_hdr),
				     tcp, TCP_HDR_MIN);
	bpf_sk_release(sk);
	return rc == 0 ? TCP_OWNED : TCP_NOT_OWNED;
}

#endif /* VIPD_SOCK_H */
