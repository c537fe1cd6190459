// Package dataplane owns the node's XDP program and its maps: it loads the
// program built from bpf/ (bpf2go), attaches it to the uplink, pins what must
// outlive vipd under bpffs and adopts that state on restart, builds the
// forwarding tables (rendezvous hashing) and swaps them in atomically, keeps
// the bound set (the loop guard) and the GUE trust boundary, reads the
// counters (per verdict and per VIP) and the maps' memory, and sends
// data-path probes. *Dataplane implements vip.Dataplane.
//
// Pinned state, under Options.PinPath (a directory on a bpffs):
//
//	vips4 vips6 tables backends vip_addrs       VIPs, tables, bound set
//	members4 members6 directors config vip_filter  trust boundary, config
//	stats vip_stats                              counters
//	link                                         the XDP link
//
// Close releases every fd and leaves all of it in place: the program keeps
// forwarding with no vipd running, and the next Open adopts the link
// (replacing its program atomically with link.Update) and the maps, without
// detaching or flushing anything. Pins of an incompatible layout are refused,
// not migrated. Uninstall (or RemovePinned, when no vipd runs) detaches the
// program and removes the pins.
//
// Tables: VIPs with the same backends, roles and local flags share one
// stored table (BuildSharedTable), reference-counted. A table is built,
// filled and installed in a free slot of the `tables` map-in-map before any
// VIP points at it, and never changes afterwards: a VIP whose backends change
// moves to another table by rewriting its `vips4`/`vips6` entries, each in
// one update, so a packet sees one complete table or the other. A table
// without VIPs is removed after a grace period in which every running
// program finishes. Backend entries live in one global `backends` array,
// shared between tables and reference counted, so a table row is two 16-bit
// slots.
//
// GUE is GitHub GLB's format (docs/design.md, "GUE wire format"): the hops
// are the alternates only; a forwarding node sends from its own address.
// The trust boundary (Trust, SetTrust) limits who may send GUE and which
// hops it may name.
//
// The limits (MaxVIPs, MaxBackends, ...) are constants on every platform;
// Scale.Check names the one a configuration exceeds.
package dataplane
