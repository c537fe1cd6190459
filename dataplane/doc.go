// Package dataplane owns the node's XDP program and its maps: it loads the
// program built from bpf/ (bpf2go), attaches it to the uplink, pins what must
// outlive vipd under bpffs and adopts that state on restart, builds the
// per-VIP forwarding tables (rendezvous hashing) and swaps them in
// atomically, keeps the bound set (the loop guard) and reads the counters.
// *Dataplane implements vip.Dataplane.
package dataplane
