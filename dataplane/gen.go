package dataplane

// The XDP program (bpf/vipd.c) and the programs the benchmarks need
// (bpf/baseline.c, bpf/bench.c, and vipd.c again with VIPD_STAGES, which
// stops at a chosen stage: test-only output) are compiled by bpf2go,
// pinned in go.mod's tool block. The generated files are committed; `make
// generate` must reproduce them byte for byte.
//
// vipd.c is compiled with -mcpu=v3 (32-bit ALU and jumps; kernel 5.1+, below
// the 5.11 its helpers already need) instead of bpf2go's default v1: fewer
// instructions on every path, the director encapsulation ~2-3 ns cheaper.

//go:generate go tool bpf2go -tags linux -target bpfel -cc clang -type vip4_key -type vip6_key -type vip_info -type row -type row_pair -type backend -type addr_key -type in6_key -type addr_info -type prefix_key -type dp_config -type stat -type vip_stat -type vip_counters -type limits -type backend_flags -type config_flags -type addr_flags -type vip_key_flags -type probe_kind -type probe_body -type vip_filter_bits vipd ../bpf/vipd.c -- -O2 -mcpu=v3 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I../bpf
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang -output-suffix _test -type bench_stage vipdstages ../bpf/vipd.c -- -O2 -mcpu=v3 -g -Wall -Werror -DVIPD_STAGES -I/usr/include/x86_64-linux-gnu -I../bpf
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang -output-suffix _test baseline ../bpf/baseline.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang -output-suffix _test -type frame bench ../bpf/bench.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
