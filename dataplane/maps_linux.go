//go:build linux

package dataplane

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/vipd/vipd/vip"
	"golang.org/x/sys/unix"
)

// The numbers of bpf/vipd.h the loader needs, from bpf2go's output (-type
// limits, backend_flags, config_flags): a change to the C cannot leave a
// stale copy here.
const (
	vipFilterWords  = uint32(vipdLimitsVIP_FILTER_WORDS)
	dpFlagVIPFilter = uint16(vipdConfigFlagsDP_F_VIP_FILTER)
	backendLocal    = uint8(vipdBackendFlagsBACKEND_LOCAL)
	rowSize         = int(unsafe.Sizeof(vipdRow{})) // struct row
)

// TableRows is declared in table.go, which builds on every platform; this
// fails to compile (constant overflow) unless it is the program's
// TABLE_ROWS.
const _ = uint(TableRows-int(vipdLimitsTABLE_ROWS)) + uint(int(vipdLimitsTABLE_ROWS)-TableRows)

// DefaultGUEPort (options.go, every platform) must be the program's
// GUE_PORT_DEFAULT in the same way.
const _ = uint(DefaultGUEPort-int(vipdLimitsGUE_PORT_DEFAULT)) + uint(int(vipdLimitsGUE_PORT_DEFAULT)-DefaultGUEPort)

// vipState is what the Dataplane knows of one programmed VIP.
type vipState struct {
	id       uint32        // index of its table in `tables`
	services []vip.Service // sorted; one `vips` entry each
	slots    []uint32      // backend slots its table holds a reference on
	// last is the normalized Program that built the table; nil for a VIP
	// adopted from pinned state (its next Program always rebuilds).
	last *vip.ProgramSpec
}

func vipKey(addr netip.Addr, s vip.Service) vipdVipKey {
	k := vipdVipKey{Port: s.Port, Proto: s.Proto}
	k.Addr, k.Family = addrBytes(addr)
	return k
}

func addrKey(addr netip.Addr) vipdAddrKey {
	var k vipdAddrKey
	k.Addr, k.Family = addrBytes(addr)
	return k
}

// addrBytes is the map encoding of an address: IPv4 in the first 4 bytes.
func addrBytes(addr netip.Addr) ([16]byte, uint8) {
	var b [16]byte
	if addr.Is4() {
		a4 := addr.As4()
		copy(b[:], a4[:])
		return b, 4
	}
	return addr.As16(), 6
}

func addrFromBytes(b [16]byte, family uint8) (netip.Addr, bool) {
	switch family {
	case 4:
		return netip.AddrFrom4([4]byte(b[:4])), true
	case 6:
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// normalize sorts and deduplicates a Program so equal programs compare
// equal whatever their order.
func normalize(p vip.ProgramSpec) vip.ProgramSpec {
	p.Addr = p.Addr.Unmap()
	p.Services = slices.Clone(p.Services)
	slices.SortFunc(p.Services, func(a, b vip.Service) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
	p.Services = slices.Compact(p.Services)
	p.Backends = slices.Clone(p.Backends)
	slices.SortFunc(p.Backends, func(a, b vip.Backend) int { return cmp.Compare(a.Name, b.Name) })
	return p
}

func equalProgram(a, b *vip.ProgramSpec) bool {
	return a.Addr == b.Addr && slices.Equal(a.Services, b.Services) && slices.Equal(a.Backends, b.Backends)
}

// Program installs or replaces the VIP p.Addr: it builds the forwarding
// table, fills a new inner map and swaps it into `tables` in one update (a
// packet sees the old table or the new one, never half of one), then makes
// the VIP's `vips` entries exactly p.Services. The VIP keeps its table id
// for as long as it is programmed. Programming the same value again does
// nothing. A Program with no backend fails (ErrNoBackend) and leaves the
// VIP as it was: the controller keeps a VIP programmed during the withdraw
// grace, and its last table still forwards the flows that arrive then.
func (d *Dataplane) Program(ctx context.Context, p vip.ProgramSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !p.Addr.IsValid() {
		return errors.New("programming vip: invalid address")
	}
	p = normalize(p)
	log := d.log.With("vip", p.Addr)
	if len(p.Services) == 0 {
		return fmt.Errorf("programming vip %s: %w", p.Addr, ErrNoService)
	}
	rows, err := BuildTable(d.opts.Seed, p.Addr, p.Backends)
	if err != nil {
		return fmt.Errorf("building table of %s: %w", p.Addr, err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	st := d.vips[p.Addr]
	if st != nil && st.last != nil && equalProgram(st.last, &p) {
		return nil
	}
	fresh := st == nil
	if fresh {
		id, err := d.allocIDLocked()
		if err != nil {
			return fmt.Errorf("programming vip %s: %w", p.Addr, err)
		}
		st = &vipState{id: id}
	}

	slots, err := d.acquireLocked(p.Backends)
	if err != nil {
		if fresh {
			d.ids[st.id] = false
		}
		return fmt.Errorf("programming vip %s: %w", p.Addr, err)
	}
	if err := d.swapTableLocked(st.id, rows, slots); err != nil {
		d.releaseLocked(slots)
		if fresh {
			d.ids[st.id] = false
		}
		return fmt.Errorf("programming vip %s: %w", p.Addr, err)
	}
	// From here the table is live: record the state before touching
	// `vips`, so a failure below leaves bookkeeping that matches the maps.
	oldSlots, oldServices := st.slots, st.services
	st.slots = slots
	d.vips[p.Addr] = st
	d.releaseLocked(oldSlots)

	// The filter bit first, then add before delete: the VIP never
	// disappears for a service it keeps.
	if err := d.setFilterLocked(); err != nil {
		return fmt.Errorf("programming vip %s: %w", p.Addr, err)
	}
	info := vipdVipInfo{Id: st.id}
	for _, s := range p.Services {
		if err := d.objs.Vips.Put(vipKey(p.Addr, s), &info); err != nil {
			st.services = mergeServices(oldServices, p.Services[:slices.Index(p.Services, s)])
			return fmt.Errorf("programming vip %s service %d/%d: %w", p.Addr, s.Proto, s.Port, err)
		}
	}
	for _, s := range oldServices {
		if slices.Contains(p.Services, s) {
			continue
		}
		if err := d.objs.Vips.Delete(vipKey(p.Addr, s)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			st.services = mergeServices(oldServices, p.Services)
			return fmt.Errorf("removing vip %s service %d/%d: %w", p.Addr, s.Proto, s.Port, err)
		}
	}
	st.services = p.Services
	st.last = &p
	log.Debug("programmed vip", "id", st.id, "backends", len(p.Backends), "state", "programmed")
	return nil
}

func mergeServices(a, b []vip.Service) []vip.Service {
	out := slices.Concat(a, b)
	slices.SortFunc(out, func(a, b vip.Service) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out)
}

// swapTableLocked points tables[id] at a new table holding rows (indexes
// into slots): encodeRowsLocked, then installTableLocked.
func (d *Dataplane) swapTableLocked(id uint32, rows []Row, slots []uint32) error {
	d.encodeRowsLocked(rows, slots)
	return d.installTableLocked(id)
}

// encodeRowsLocked writes rows as struct row values into d.rowBuf.
func (d *Dataplane) encodeRowsLocked(rows []Row, slots []uint32) {
	buf := d.rowBuf[:len(rows)*rowSize]
	for i, r := range rows {
		b := buf[i*rowSize : i*rowSize+rowSize]
		binary.NativeEndian.PutUint32(b[0:4], slots[r.Primary])
		binary.NativeEndian.PutUint32(b[4:8], slots[r.Secondary])
	}
}

// installTableLocked creates a table from d.rowBuf and swaps it into
// tables[id] in one update: a packet sees the old table or the new one,
// never half of one. The inner map is mmapable (see Open): one copy of
// 512 KiB through a mapping replaces a 65536-element batch update (tens of
// milliseconds). The inner map's fd and mapping are released at once: the
// outer map holds the only reference, and replacing it frees the old
// table. The kernel waits for running programs before a map-in-map update
// returns, so afterwards no packet uses the old table.
func (d *Dataplane) installTableLocked(id uint32) error {
	inner, err := ebpf.NewMap(d.innerSpec)
	if err != nil {
		return fmt.Errorf("creating table: %w", err)
	}
	defer inner.Close()
	mem, err := unix.Mmap(inner.FD(), 0, len(d.rowBuf), unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mapping table: %w", err)
	}
	copy(mem, d.rowBuf)
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("unmapping table: %w", err)
	}
	if err := d.objs.Tables.Put(id, inner); err != nil {
		return fmt.Errorf("swapping table %d: %w", id, err)
	}
	return nil
}

func (d *Dataplane) allocIDLocked() (uint32, error) {
	for i, used := range d.ids {
		if !used {
			d.ids[i] = true
			return uint32(i), nil
		}
	}
	return 0, fmt.Errorf("%w (%d)", ErrTooManyVIPs, len(d.ids))
}

// acquireLocked returns the backend slot of each backend, writing the
// entries of new slots. On error it holds no reference.
func (d *Dataplane) acquireLocked(bs []vip.Backend) ([]uint32, error) {
	slots := make([]uint32, 0, len(bs))
	for _, b := range bs {
		addr := b.Addr.Unmap()
		if !addr.IsValid() {
			d.releaseLocked(slots)
			return nil, fmt.Errorf("backend %s has no address", b.Name)
		}
		slot, fresh, err := d.slots.acquire(slotKey{addr: addr, local: b.Local})
		if err != nil {
			d.releaseLocked(slots)
			return nil, err
		}
		slots = append(slots, slot)
		if !fresh {
			continue
		}
		var e vipdBackend
		e.Addr, e.Family = addrBytes(addr)
		if b.Local {
			e.Flags = backendLocal
		}
		if err := d.objs.Backends.Put(slot, &e); err != nil {
			d.releaseLocked(slots)
			return nil, fmt.Errorf("writing backend %s: %w", b.Name, err)
		}
	}
	return slots, nil
}

// releaseLocked drops one reference per slot and clears freed entries.
func (d *Dataplane) releaseLocked(slots []uint32) {
	for _, s := range slots {
		if d.slots.release(s) {
			if err := d.objs.Backends.Put(s, &vipdBackend{}); err != nil {
				d.log.Warn("clearing backend slot", "slot", s, "reason", err.Error())
			}
		}
	}
}

// setFilterLocked makes vip_filter the bitmap of the programmed VIPs,
// writing only the words that change. Bits are set before a VIP's entries
// are added and cleared after they are deleted, so the filter never hides
// a VIP.
func (d *Dataplane) setFilterLocked() error { return d.writeFilterLocked(false) }

// writeFilterLocked computes the bitmap and writes the words that differ
// from the Go copy, or every word when all is set (the pinned map's content
// is unknown after a restart).
func (d *Dataplane) writeFilterLocked(all bool) error {
	var want [vipFilterWords]uint64
	for addr := range d.vips {
		bit := addrFilterBit(addr)
		want[bit>>6] |= 1 << (bit & 63)
	}
	for i := range want {
		if !all && want[i] == d.filter[i] {
			continue
		}
		if err := d.objs.VipFilter.Put(uint32(i), want[i]); err != nil {
			return fmt.Errorf("writing vip filter: %w", err)
		}
		d.filter[i] = want[i]
	}
	return nil
}

// Unprogram removes the VIP: its `vips` entries first (new packets no
// longer match), then its table and backend references. Absent is success.
func (d *Dataplane) Unprogram(ctx context.Context, addr netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	addr = addr.Unmap()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	st := d.vips[addr]
	if st == nil {
		return nil
	}
	for len(st.services) > 0 {
		s := st.services[0]
		if err := d.objs.Vips.Delete(vipKey(addr, s)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("unprogramming vip %s service %d/%d: %w", addr, s.Proto, s.Port, err)
		}
		st.services = st.services[1:]
	}
	if err := d.objs.Tables.Delete(st.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unprogramming vip %s table %d: %w", addr, st.id, err)
	}
	delete(d.vips, addr)
	d.ids[st.id] = false
	d.releaseLocked(st.slots)
	if err := d.setFilterLocked(); err != nil {
		return fmt.Errorf("unprogramming vip %s: %w", addr, err)
	}
	d.log.Debug("unprogrammed vip", "vip", addr, "state", "unprogrammed")
	return nil
}

// Programmed lists the VIPs in the `vips` map, sorted: after a restart this
// is the pinned state the controller adopts.
func (d *Dataplane) Programmed(ctx context.Context) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	seen := map[netip.Addr]bool{}
	var (
		k    vipdVipKey
		info vipdVipInfo
	)
	it := d.objs.Vips.Iterate()
	for it.Next(&k, &info) {
		if addr, ok := addrFromBytes(k.Addr, k.Family); ok {
			seen[addr] = true
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("listing programmed vips: %w", err)
	}
	out := make([]netip.Addr, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// SetBound makes the `bound` map (the loop guard: VIPs this node accepts
// decapsulated traffic for) exactly addrs, diffing against the map itself:
// adds first, then deletes.
func (d *Dataplane) SetBound(ctx context.Context, addrs []netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	want := map[vipdAddrKey]bool{}
	for _, a := range addrs {
		if !a.IsValid() {
			return errors.New("setting bound set: invalid address")
		}
		want[addrKey(a.Unmap())] = true
	}
	have := map[vipdAddrKey]bool{}
	var (
		k vipdAddrKey
		v uint8
	)
	it := d.objs.Bound.Iterate()
	for it.Next(&k, &v) {
		have[k] = true
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("reading bound set: %w", err)
	}
	for k := range want {
		if have[k] {
			continue
		}
		if err := d.objs.Bound.Put(k, uint8(1)); err != nil {
			return fmt.Errorf("binding %v: %w", k.Addr, err)
		}
	}
	for k := range have {
		if want[k] {
			continue
		}
		if err := d.objs.Bound.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("unbinding %v: %w", k.Addr, err)
		}
	}
	return nil
}

// adoptLocked rebuilds the bookkeeping from pinned maps left by a previous
// vipd: VIP ids and services from `vips`, backend slot references from the
// tables themselves. Nothing is flushed. Unreferenced backend slots and
// tables no VIP points at are cleared.
func (d *Dataplane) adoptLocked() error {
	var (
		k    vipdVipKey
		info vipdVipInfo
	)
	it := d.objs.Vips.Iterate()
	for it.Next(&k, &info) {
		addr, ok := addrFromBytes(k.Addr, k.Family)
		if !ok || int(info.Id) >= len(d.ids) {
			return fmt.Errorf("bad vips entry %v -> %d", k, info.Id)
		}
		st := d.vips[addr]
		if st == nil {
			st = &vipState{id: info.Id}
			d.vips[addr] = st
			d.ids[info.Id] = true
		}
		st.services = mergeServices(st.services, []vip.Service{{Proto: k.Proto, Port: k.Port}})
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("reading vips: %w", err)
	}

	backends := make([]vipdBackend, len(d.slots.refs))
	for i := range backends {
		if err := d.objs.Backends.Lookup(uint32(i), &backends[i]); err != nil {
			return fmt.Errorf("reading backend %d: %w", i, err)
		}
	}
	for addr, st := range d.vips {
		used, err := d.tableSlotsLocked(st.id)
		if err != nil {
			return fmt.Errorf("reading table of %s: %w", addr, err)
		}
		for _, s := range used {
			b := backends[s]
			a, ok := addrFromBytes(b.Addr, b.Family)
			if !ok {
				continue // an empty slot: the program drops and counts
			}
			d.slots.adopt(s, slotKey{addr: a, local: b.Flags&backendLocal != 0})
			st.slots = append(st.slots, s)
		}
	}
	for i, b := range backends {
		if b.Family != 0 && d.slots.refs[i] == 0 {
			if err := d.objs.Backends.Put(uint32(i), &vipdBackend{}); err != nil {
				return fmt.Errorf("clearing unused backend %d: %w", i, err)
			}
		}
	}
	for id, used := range d.ids {
		if !used {
			if err := d.objs.Tables.Delete(uint32(id)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("clearing unused table %d: %w", id, err)
			}
		}
	}
	if err := d.writeFilterLocked(true); err != nil {
		return err
	}
	if len(d.vips) > 0 {
		d.log.Info("adopted pinned vips", "vips", len(d.vips), "backends", d.slots.inUse(), "state", "adopted")
	}
	return nil
}

// tableSlotsLocked lists the distinct backend slots table id points at.
func (d *Dataplane) tableSlotsLocked(id uint32) ([]uint32, error) {
	var inner *ebpf.Map
	err := d.objs.Tables.Lookup(id, &inner)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		// A VIP without a table (a crash between the two updates): the
		// program drops and counts its packets until it is programmed.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up table %d: %w", id, err)
	}
	defer inner.Close()
	var cursor ebpf.MapBatchCursor
	n, err := inner.BatchLookup(&cursor, d.rowKeys, d.rowVals, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("reading table %d: %w", id, err)
	}
	seen := map[uint32]bool{}
	var out []uint32
	for _, r := range d.rowVals[:n] {
		for _, s := range []uint32{r.Primary, r.Secondary} {
			if !seen[s] && int(s) < len(d.slots.refs) {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	// Restore the key slice BatchLookup overwrote (it writes the same
	// 0..n-1 for an array, but do not rely on it).
	for i := range d.rowKeys {
		d.rowKeys[i] = uint32(i)
	}
	return out, nil
}

var _ vip.Dataplane = (*Dataplane)(nil)
