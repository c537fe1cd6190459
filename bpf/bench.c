//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bench.c: lets BPF_PROG_TEST_RUN with repeat > 1 time a program that
 * rewrites its packet. The kernel copies the input once and runs the program
 * again on its own output, so an encapsulating program would be timed on its
 * already encapsulated result. bench_wrap restores the original frame (kept
 * in bench_frame) before every run, then tail-calls the program under test
 * (bench_progs[0]). bench_empty, tail-called the same way, measures the
 * wrapper's own cost, which the benchmarks subtract.
 *
 * bench_wrap writes back only the 8-byte words that differ from the
 * original. bench_wrap_full, the wrapper before it, writes back the whole
 * frame (bpf_xdp_store_bytes, a memcpy) every run. Those fresh stores sit
 * in the CPU's store buffer when the program under test starts, and a
 * load that straddles two of the memcpy's store chunks cannot be served
 * from it: it waits until the stores reach the cache. So bench_wrap_full
 * charges a program for every packet word it reads across such a
 * boundary (an IPv4 destination address, IPv6 addresses: 4-9 ns of vipd's
 * director path), a cost a frame a NIC wrote by DMA never has, and one the
 * baseline never pays (it reads single bytes). dataplane/bench_test.go
 * still prints the ratios bench_wrap_full gives, beside the others.
 */

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define FRAME_MAX 256

struct frame {
	__u32 len;
	__u32 pad;
	__u64 data[FRAME_MAX / 8]; /* the frame, little-endian words */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct frame);
} bench_frame SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_progs SEC(".maps");

/*
 * rewind moves the head back to where the frame started: encap and decap
 * move only the head. Called even with delta 0, so the wrapper costs the
 * same whatever the program under test did, and bench_empty measures all
 * of it. Returns the frame, or NULL.
 */
static __always_inline struct frame *rewind(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct frame *f = bpf_map_lookup_elem(&bench_frame, &zero);
	int cur;

	if (!f || f->len < 14 || f->len > FRAME_MAX)
		return NULL;
	cur = (int)(ctx->data_end - ctx->data);
	if (bpf_xdp_adjust_head(ctx, cur - (int)f->len))
		return NULL;
	return f;
}

SEC("xdp")
int bench_wrap(struct xdp_md *ctx)
{
	struct frame *f = rewind(ctx);
	void *data, *data_end;
	__u8 *orig;
	__u32 len, words;

	if (!f)
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	len = f->len;
	words = len / 8;
	/* Every word is compared, so the cost does not depend on what the
	 * program changed; only a changed word is stored. */
#pragma clang loop unroll(full)
	for (int i = 0; i < FRAME_MAX / 8; i++) {
		__u64 *p = data + i * 8;

		if (i >= words || (void *)(p + 1) > data_end)
			break;
		if (*p != f->data[i])
			*p = f->data[i];
	}
	/* The last len % 8 bytes, one at a time. */
	orig = (__u8 *)f->data;
#pragma clang loop unroll(full)
	for (int i = 0; i < 7; i++) {
		__u32 off = words * 8 + i;
		__u8 *p = data + off;

		if (off >= len || off >= FRAME_MAX || (void *)(p + 1) > data_end)
			break;
		if (*p != orig[off])
			*p = orig[off];
	}
	bpf_tail_call(ctx, &bench_progs, 0);
	return XDP_ABORTED;
}

SEC("xdp")
int bench_wrap_full(struct xdp_md *ctx)
{
	struct frame *f = rewind(ctx);
	__u32 len;

	if (!f)
		return XDP_ABORTED;
	len = f->len;
	if (len < 14 || len > FRAME_MAX)
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, f->data, len))
		return XDP_ABORTED;
	bpf_tail_call(ctx, &bench_progs, 0);
	return XDP_ABORTED;
}

SEC("xdp")
int bench_empty(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
