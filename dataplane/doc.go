// Package dataplane owns the node's XDP program and its maps: it loads the
// program built from bpf/ (bpf2go), attaches it to the uplink, pins what must
// outlive vipd under bpffs and adopts that state on restart, builds the
// per-VIP forwarding tables (rendezvous hashing) and swaps them in
// atomically, keeps the bound set (the loop guard) and reads the counters.
// *Dataplane implements vip.Dataplane.
//
// Pinned state, under Options.PinPath (a directory on a bpffs):
//
//	vips tables backends bound config vip_filter stats   the maps
//	link                                                  the XDP link
//
// Close releases every fd and leaves all of it in place: the program keeps
// forwarding with no vipd running, and the next Open adopts the link
// (replacing its program atomically with link.Update) and the maps, without
// detaching or flushing anything. Uninstall (or RemovePinned, when no vipd
// runs) detaches the program and removes the pins.
//
// Tables: every VIP owns one slot of the `tables` map-in-map, kept for as
// long as it is programmed. An update builds a complete inner map and
// replaces the slot in one syscall; the kernel returns only when no running
// program can still see the old table, which is then freed. Backend entries
// live in one global `backends` array, shared between VIPs and reference
// counted, so a table row is two 32-bit indexes.
package dataplane
