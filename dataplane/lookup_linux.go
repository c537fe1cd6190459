//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// ErrNoVIPService: LookupFlow was asked about a VIP, protocol and port the
// program has no entry for (it passes such packets to the stack).
var ErrNoVIPService = errors.New("no vip entry for this protocol and port")

// LookupFlow answers which row and backends the XDP program picks for a
// flow from client to vip port (proto 6 TCP, 17 UDP; an unfragmented
// packet), reading the program's own maps: the hash seed from `config`,
// the VIP's entry (port-specific first, then any-port, as the program
// looks it up), its table in `tables` and the backend slots of the row.
// The hash is FlowHash, the program's. secondary is invalid when the row
// has none. It implements daemon.FlowLooker (vipctl lookup).
func (d *Dataplane) LookupFlow(ctx context.Context, vip netip.Addr, client netip.AddrPort, proto uint8, port uint16) (row uint32, primary, secondary netip.Addr, err error) {
	if err := ctx.Err(); err != nil {
		return 0, netip.Addr{}, netip.Addr{}, err
	}
	vip, src := vip.Unmap(), client.Addr().Unmap()
	if vip.Is4() != src.Is4() {
		return 0, netip.Addr{}, netip.Addr{}, fmt.Errorf("looking up a flow from %s to %s: the families differ", src, vip)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, netip.Addr{}, netip.Addr{}, ErrClosed
	}
	var cfg vipdDpConfig
	if err := d.objs.Config.Lookup(uint32(0), &cfg); err != nil {
		return 0, netip.Addr{}, netip.Addr{}, fmt.Errorf("reading the program's config: %w", err)
	}
	var info vipdVipInfo
	found := false
	for _, p := range []uint16{port, 0} {
		m, key := d.entry(vipKey{addr: vip, port: p, proto: proto})
		err := m.Lookup(key, &info)
		if err == nil {
			found = true
			break
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0, netip.Addr{}, netip.Addr{}, fmt.Errorf("reading the entry of %s: %w", vip, err)
		}
		if p == 0 {
			break
		}
	}
	if !found {
		return 0, netip.Addr{}, netip.Addr{}, fmt.Errorf("looking up %s %d/%d: %w", vip, proto, port, ErrNoVIPService)
	}
	var inner *ebpf.Map
	if err := d.objs.Tables.Lookup(info.Table, &inner); err != nil {
		return 0, netip.Addr{}, netip.Addr{}, fmt.Errorf("reading table %d of %s: %w", info.Table, vip, err)
	}
	defer inner.Close()
	row = FlowHash(cfg.HashSeed, src, vip, client.Port(), port, proto) & (TableRows - 1)
	var pair vipdRowPair
	if err := inner.Lookup(row>>1, &pair); err != nil {
		return 0, netip.Addr{}, netip.Addr{}, fmt.Errorf("reading row %d of table %d: %w", row, info.Table, err)
	}
	r := pair.R[row&1]
	backend := func(slot uint16) (netip.Addr, error) {
		var b vipdBackend
		if err := d.objs.Backends.Lookup(uint32(slot), &b); err != nil {
			return netip.Addr{}, fmt.Errorf("reading backend %d: %w", slot, err)
		}
		a, _ := addrFromBytes(b.Addr, b.Family)
		return a, nil
	}
	if primary, err = backend(r.Primary); err != nil {
		return 0, netip.Addr{}, netip.Addr{}, err
	}
	if !primary.IsValid() {
		return row, primary, netip.Addr{}, fmt.Errorf("row %d of table %d: its primary slot %d is empty", row, info.Table, r.Primary)
	}
	if r.Secondary != r.Primary {
		if secondary, err = backend(r.Secondary); err != nil {
			return 0, netip.Addr{}, netip.Addr{}, err
		}
	}
	return row, primary, secondary, nil
}
