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
 */

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define FRAME_MAX 256

struct frame {
	__u32 len;
	__u8 data[FRAME_MAX];
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

SEC("xdp")
int bench_wrap(struct xdp_md *ctx)
{
	__u32 zero = 0, len;
	struct frame *f = bpf_map_lookup_elem(&bench_frame, &zero);
	int cur;

	if (!f)
		return XDP_ABORTED;
	len = f->len;
	if (len < 14 || len > FRAME_MAX)
		return XDP_ABORTED;
	/*
	 * Encap and decap move only the head: move it back. Called even with
	 * delta 0, so the wrapper costs the same whatever the program under
	 * test did, and bench_empty measures all of it.
	 */
	cur = (int)(ctx->data_end - ctx->data);
	if (bpf_xdp_adjust_head(ctx, cur - (int)len))
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
