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
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/vipd/vipd/vip"
	"golang.org/x/sys/unix"
)

// The numbers of bpf/vipd.h the loader needs, from bpf2go's output (-type
// limits, backend_flags, config_flags...): a change to the C cannot leave a
// stale copy here.
const (
	vipFilterWords  = uint32(vipdLimitsVIP_FILTER_WORDS)
	dpFlagVIPFilter = uint16(vipdConfigFlagsDP_F_VIP_FILTER)
	vfPorts         = uint64(vipdVipFilterBitsVF_PORTS)
	vfAnyPort       = uint64(vipdVipFilterBitsVF_ANY_PORT)
	dpFlagGUETrust  = uint16(vipdConfigFlagsDP_F_GUE_TRUST)
	dpFlagDirectors = uint16(vipdConfigFlagsDP_F_DIRECTORS)
	backendLocal    = uint8(vipdBackendFlagsBACKEND_LOCAL)
	addrBound       = uint32(vipdAddrFlagsADDR_BOUND)
	keyFragments    = uint8(vipdVipKeyFlagsVIP_KEY_FRAGMENTS)
	rowSize         = int(unsafe.Sizeof(vipdRow{})) // struct row
)

// Each of these fails to compile (constant overflow) unless its two sides
// are equal: the portable constants of limits.go, options.go and table.go
// must be the program's.
const (
	_ = uint(TableRows-int(vipdLimitsTABLE_ROWS)) + uint(int(vipdLimitsTABLE_ROWS)-TableRows)
	// The mmap of a table is its rows back to back (encodeRowsLocked):
	// pairs of rows with no padding.
	_ = uint(TableRows-2*int(vipdLimitsTABLE_PAIRS)) + uint(2*int(vipdLimitsTABLE_PAIRS)-TableRows)
	_ = uint(2*rowSize-int(unsafe.Sizeof(vipdRowPair{}))) + uint(int(unsafe.Sizeof(vipdRowPair{}))-2*rowSize)
	_ = uint(DefaultGUEPort-int(vipdLimitsGUE_PORT_DEFAULT)) + uint(int(vipdLimitsGUE_PORT_DEFAULT)-DefaultGUEPort)
	_ = uint(MaxVIPs-int(vipdLimitsMAX_VIPS)) + uint(int(vipdLimitsMAX_VIPS)-MaxVIPs)
	_ = uint(MaxVIPKeys-int(vipdLimitsMAX_VIP_KEYS)) + uint(int(vipdLimitsMAX_VIP_KEYS)-MaxVIPKeys)
	_ = uint(MaxTables-int(vipdLimitsMAX_TABLES)) + uint(int(vipdLimitsMAX_TABLES)-MaxTables)
	_ = uint(MaxBackends-int(vipdLimitsMAX_BACKENDS)) + uint(int(vipdLimitsMAX_BACKENDS)-MaxBackends)
	_ = uint(MaxMembers-int(vipdLimitsMAX_MEMBERS)) + uint(int(vipdLimitsMAX_MEMBERS)-MaxMembers)
	_ = uint(MaxDirectorPrefixes-int(vipdLimitsMAX_DIRECTOR_PREFIXES)) + uint(int(vipdLimitsMAX_DIRECTOR_PREFIXES)-MaxDirectorPrefixes)
	_ = uint(MaxHopsAccepted-int(vipdLimitsMAX_HOPS_RX)) + uint(int(vipdLimitsMAX_HOPS_RX)-MaxHopsAccepted)
	_ = uint(TableBytes-TableRows*int(unsafe.Sizeof(vipdRow{}))) + uint(TableRows*int(unsafe.Sizeof(vipdRow{}))-TableBytes)
	// The probe's wire format (probe.go, every platform).
	_ = uint(probeCType-int(vipdLimitsGUE_CTYPE_PROBE)) + uint(int(vipdLimitsGUE_CTYPE_PROBE)-probeCType)
	_ = uint(probeMagic-int(vipdLimitsPROBE_MAGIC)) + uint(int(vipdLimitsPROBE_MAGIC)-probeMagic)
	_ = uint(probeBodyLen-int(vipdLimitsPROBE_LEN)) + uint(int(vipdLimitsPROBE_LEN)-probeBodyLen)
	_ = uint(probeBodyLen-int(unsafe.Sizeof(vipdProbeBody{}))) + uint(int(unsafe.Sizeof(vipdProbeBody{}))-probeBodyLen)
	_ = uint(probeRequest-int(vipdProbeKindPROBE_REQUEST)) + uint(int(vipdProbeKindPROBE_REQUEST)-probeRequest)
	_ = uint(probeReply-int(vipdProbeKindPROBE_REPLY)) + uint(int(vipdProbeKindPROBE_REPLY)-probeReply)
)

// addrState is one `vip_addrs` entry: a VIP address this node programs,
// binds, or both.
type addrState struct {
	idx   uint32    // its index into vip_stats
	bound bool      // in the bound set (ADDR_BOUND)
	vip   *vipState // nil unless programmed
}

// vipState is what the Dataplane knows of one programmed VIP.
type vipState struct {
	services []vip.Service // sorted
	// pending are services being added by a Program that has not
	// finished: the filter keeps their bits too.
	pending []vip.Service
	fbits   uint64   // the vip_filter bits it is counted with
	keys    []vipKey // its `vips4`/`vips6` entries: services and fragment entries
	// tables are the tables its entries point at: one, more only after
	// adopting the state of a vipd that stopped in the middle of a move.
	tables []*tableState
	// last is the normalized ProgramSpec that built it; nil for a VIP
	// adopted from pinned state (its next Program always rewrites).
	last *vip.ProgramSpec
}

// tableState is one stored forwarding table, shared by every programmed
// VIP with the same backends and roles.
type tableState struct {
	id    uint32   // index in `tables`
	key   string   // tableKey of its backends; "" when adopted (never shared)
	refs  int      // VIPs pointing at it
	slots []uint32 // backend slots it holds a reference on
	bytes uint64   // the kernel's memlock figure for it
}

// vipKey is one entry of `vips4` or `vips6`, by the address's family.
type vipKey struct {
	addr  netip.Addr
	port  uint16
	proto uint8
	frag  bool // VIP_KEY_FRAGMENTS: the entry later fragments match
}

// entry returns the map k lives in and its key there.
func (d *Dataplane) entry(k vipKey) (*ebpf.Map, any) {
	var flags uint8
	if k.frag {
		flags = keyFragments
	}
	if k.addr.Is4() {
		return d.objs.Vips4, &vipdVip4Key{Addr: k.addr.As4(), Port: k.port, Proto: k.proto, Flags: flags}
	}
	return d.objs.Vips6, &vipdVip6Key{Addr: k.addr.As16(), Port: k.port, Proto: k.proto, Flags: flags}
}

// putVIPKey writes a `vips4`/`vips6` entry and retires the program's VIP
// cache, so no CPU answers k from what the entry held before.
func (d *Dataplane) putVIPKey(k vipKey, info *vipdVipInfo) error {
	m, key := d.entry(k)
	if err := m.Put(key, info); err != nil {
		return err
	}
	return d.retireVIPCache()
}

// deleteVIPKey deletes a `vips4`/`vips6` entry (absent is fine) and
// retires the program's VIP cache.
func (d *Dataplane) deleteVIPKey(k vipKey) error {
	m, key := d.entry(k)
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return d.retireVIPCache()
}

// retireVIPCache bumps the program's vip_gen: every entry of its per-CPU
// VIP cache was filled under an older generation and is looked up afresh
// (bpf/vipd.c, "The VIP cache"). Called after each change to `vips4` or
// `vips6`, so a cached entry never outlives the change by more than the
// packets in flight. The variable is mmapped: a store, no syscall. A
// Dataplane opened only to read pins (ReadPinned) has no program and
// nothing to retire.
func (d *Dataplane) retireVIPCache() error {
	if err := bumpGen(d.objs.VipGen); err != nil {
		return fmt.Errorf("bumping vip_gen: %w", err)
	}
	return nil
}

// retireTrustCache bumps the program's trust_gen, as retireVIPCache does
// vip_gen: every entry of its per-CPU trust cache (bpf/vipd.c, "The trust
// cache") is looked up afresh. Called after each change to `members4`,
// `members6` or `directors`.
func (d *Dataplane) retireTrustCache() error {
	if err := bumpGen(d.objs.TrustGen); err != nil {
		return fmt.Errorf("bumping trust_gen: %w", err)
	}
	return nil
}

// bumpGen adds one to a cache generation of the program (nil without a
// program: nothing to do).
func bumpGen(v *ebpf.Variable) error {
	if v == nil {
		return nil
	}
	var gen uint32
	if err := v.Get(&gen); err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	return v.Set(gen + 1)
}

// vipKeys are the `vips4`/`vips6` entries of a VIP: one per service, then
// one per protocol for later fragments (VIP_KEY_FRAGMENTS), which carry no
// port.
func vipKeys(addr netip.Addr, services []vip.Service) []vipKey {
	keys := make([]vipKey, 0, len(services)+2)
	var protos []uint8
	for _, s := range services {
		keys = append(keys, vipKey{addr: addr, port: s.Port, proto: s.Proto})
		if !slices.Contains(protos, s.Proto) {
			protos = append(protos, s.Proto)
		}
	}
	for _, p := range protos {
		keys = append(keys, vipKey{addr: addr, proto: p, frag: true})
	}
	return keys
}

// vipEntries lists every entry of `vips4` and `vips6`.
func (d *Dataplane) vipEntries() ([]vipKey, []vipdVipInfo, error) {
	var (
		keys  []vipKey
		infos []vipdVipInfo
		info  vipdVipInfo
		k4    vipdVip4Key
		k6    vipdVip6Key
	)
	it := d.objs.Vips4.Iterate()
	for it.Next(&k4, &info) {
		keys = append(keys, vipKey{addr: netip.AddrFrom4(k4.Addr), port: k4.Port, proto: k4.Proto, frag: k4.Flags&keyFragments != 0})
		infos = append(infos, info)
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading vips4: %w", err)
	}
	it = d.objs.Vips6.Iterate()
	for it.Next(&k6, &info) {
		keys = append(keys, vipKey{addr: netip.AddrFrom16(k6.Addr), port: k6.Port, proto: k6.Proto, frag: k6.Flags&keyFragments != 0})
		infos = append(infos, info)
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading vips6: %w", err)
	}
	return keys, infos, nil
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

// normalize sorts and deduplicates a ProgramSpec so equal programs compare
// equal whatever their order.
func normalize(p vip.ProgramSpec) vip.ProgramSpec {
	p.Addr = p.Addr.Unmap()
	p.Services = slices.Clone(p.Services)
	slices.SortFunc(p.Services, func(a, b vip.Service) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
	p.Services = slices.Compact(p.Services)
	p.Backends = slices.Clone(p.Backends)
	for i := range p.Backends {
		p.Backends[i].Addr = p.Backends[i].Addr.Unmap()
	}
	slices.SortFunc(p.Backends, func(a, b vip.Backend) int { return cmp.Compare(a.Name, b.Name) })
	return p
}

func equalProgram(a, b *vip.ProgramSpec) bool {
	return a.Addr == b.Addr && slices.Equal(a.Services, b.Services) && slices.Equal(a.Backends, b.Backends)
}

// tableKey identifies a table by everything its content depends on: the
// backends (normalized, so in name order) with their addresses, roles,
// weights (slow start ramps each VIP's on its own) and local flags.
func tableKey(bs []vip.Backend) string {
	var b strings.Builder
	for _, be := range bs {
		b.WriteString(be.Name)
		b.WriteByte(0)
		b.WriteString(be.Addr.String())
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(int(be.Role)))
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(int(be.EffectiveWeight())))
		if be.Local {
			b.WriteString("L")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Program installs or replaces the VIP p.Addr. Its table is the stored
// table of its backends and roles: shared with every VIP that has the same
// ones, built, filled and installed in `tables` only when no VIP has it yet.
// The VIP's `vips` entries (its services, and one per protocol for later
// fragments) then point at that table: each entry changes in one update,
// so a packet sees the old complete table or the new one, never half of
// one. A table no VIP points at any more is removed once no running program
// can still be using it. Programming the same value again does nothing. A
// ProgramSpec with no backend fails (ErrNoBackend) and leaves the VIP as it
// was: the controller keeps a VIP programmed during the withdraw grace, and
// its last table still forwards the flows that arrive then.
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
	if len(p.Backends) == 0 {
		return fmt.Errorf("building table of %s: %w", p.Addr, ErrNoBackend)
	}
	for _, b := range p.Backends {
		if !b.Addr.IsValid() {
			return fmt.Errorf("programming vip %s: backend %s has no address", p.Addr, b.Name)
		}
	}
	key := tableKey(p.Backends)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	a := d.addrs[p.Addr]
	if a != nil && a.vip != nil && a.vip.last != nil && equalProgram(a.vip.last, &p) {
		return nil
	}
	keys := vipKeys(p.Addr, p.Services)
	old := 0
	if a != nil && a.vip != nil {
		old = len(a.vip.keys)
	}
	if d.nkeys-old+len(keys) > MaxVIPKeys {
		return fmt.Errorf("programming vip %s: %w (%d entries, MaxVIPKeys = %d)", p.Addr, ErrTooManyVIPKeys, d.nkeys-old+len(keys), MaxVIPKeys)
	}
	t := d.tables[key]
	if t == nil {
		var err error
		if t, err = d.newTableLocked(key, p.Backends); err != nil {
			return fmt.Errorf("programming vip %s: %w", p.Addr, err)
		}
	}
	if a == nil {
		var err error
		if a, err = d.newAddrLocked(p.Addr); err != nil {
			d.dropTableIfUnusedLocked(t)
			return fmt.Errorf("programming vip %s: %w", p.Addr, err)
		}
	}
	st := a.vip
	if st == nil {
		st = &vipState{}
		a.vip = st
	}
	if !slices.Contains(st.tables, t) {
		t.refs++
		st.tables = append(st.tables, t)
	}
	st.last = nil // until every entry points at t

	// The filter bits first, then add before delete: the VIP never
	// disappears for a service it keeps.
	st.pending = p.Services
	var err error
	if st.fbits, err = d.setVIPFilterLocked(p.Addr, st, st.fbits); err != nil {
		return fmt.Errorf("programming vip %s: %w", p.Addr, err)
	}
	info := vipdVipInfo{Table: t.id, Vip: a.idx}
	for i, k := range keys {
		if err := d.putVIPKey(k, &info); err != nil {
			d.recordKeysLocked(st, mergeKeys(st.keys, keys[:i]))
			return fmt.Errorf("programming vip %s service %d/%d: %w", p.Addr, k.proto, k.port, err)
		}
	}
	for _, k := range st.keys {
		if slices.Contains(keys, k) {
			continue
		}
		if err := d.deleteVIPKey(k); err != nil {
			d.recordKeysLocked(st, mergeKeys(st.keys, keys))
			return fmt.Errorf("removing vip %s service %d/%d: %w", p.Addr, k.proto, k.port, err)
		}
	}
	d.recordKeysLocked(st, keys)
	st.services, st.pending = p.Services, nil
	if st.fbits, err = d.setVIPFilterLocked(p.Addr, st, st.fbits); err != nil {
		return fmt.Errorf("programming vip %s: %w", p.Addr, err)
	}
	// Every entry points at t now: release the tables it used before.
	var errs []error
	for _, ot := range st.tables {
		if ot != t {
			errs = append(errs, d.releaseTableLocked(ot))
		}
	}
	st.tables = []*tableState{t}
	st.last = &p
	log.Debug("programmed vip", "table", t.id, "table_users", t.refs, "backends", len(p.Backends), "state", "programmed")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("programming vip %s: %w", p.Addr, err)
	}
	return nil
}

// recordKeysLocked sets st's `vips` entries, keeping the total count.
func (d *Dataplane) recordKeysLocked(st *vipState, keys []vipKey) {
	d.nkeys += len(keys) - len(st.keys)
	st.keys = keys
}

func mergeKeys(a, b []vipKey) []vipKey {
	out := slices.Clone(a)
	for _, k := range b {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// newTableLocked builds the table of bs (normalized), fills a new inner
// map and installs it in a free slot of `tables`. It holds a reference on
// each backend slot and none from VIPs yet.
func (d *Dataplane) newTableLocked(key string, bs []vip.Backend) (*tableState, error) {
	rows, err := BuildSharedTable(d.opts.Seed, bs)
	if err != nil {
		return nil, fmt.Errorf("building table: %w", err)
	}
	id, ok := d.tableIDs.peek()
	if !ok {
		return nil, fmt.Errorf("%w (%d)", ErrTooManyTables, len(d.tableIDs.used))
	}
	slots, err := d.acquireLocked(bs)
	if err != nil {
		return nil, err
	}
	d.encodeRowsLocked(rows, slots)
	bytes, err := d.installTableLocked(uint32(id))
	if err != nil {
		d.releaseLocked(slots)
		return nil, err
	}
	t := &tableState{id: uint32(id), key: key, slots: slots, bytes: bytes}
	d.tableIDs.take(id)
	d.tables[key] = t
	d.tableByID[t.id] = t
	return t, nil
}

// dropTableIfUnusedLocked removes a table no VIP points at (a Program that
// failed after building it).
func (d *Dataplane) dropTableIfUnusedLocked(t *tableState) {
	if t.refs == 0 {
		t.refs = 1
		if err := d.releaseTableLocked(t); err != nil {
			d.log.Warn("removing unused table", "table", t.id, "reason", err.Error())
		}
	}
}

// releaseTableLocked drops a VIP's reference on t. The last one removes it:
// first a grace period (re-installing the same table makes the kernel wait
// for every running program, so none still holds a `vips` value naming
// it), then the slot is cleared and its backend slots released.
func (d *Dataplane) releaseTableLocked(t *tableState) error {
	t.refs--
	if t.refs > 0 {
		return nil
	}
	var inner *ebpf.Map
	if err := d.objs.Tables.Lookup(t.id, &inner); err == nil {
		err = d.objs.Tables.Put(t.id, inner)
		inner.Close()
		if err != nil {
			return fmt.Errorf("waiting out table %d: %w", t.id, err)
		}
	}
	if err := d.objs.Tables.Delete(t.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.refs = 1 // keep it: retried when its last VIP moves again
		return fmt.Errorf("removing table %d: %w", t.id, err)
	}
	d.tableIDs.free(int(t.id))
	delete(d.tableByID, t.id)
	if d.tables[t.key] == t {
		delete(d.tables, t.key)
	}
	d.releaseLocked(t.slots)
	return nil
}

// encodeRowsLocked writes rows as struct row values into d.rowBuf.
func (d *Dataplane) encodeRowsLocked(rows []Row, slots []uint32) {
	buf := d.rowBuf[:len(rows)*rowSize]
	for i, r := range rows {
		b := buf[i*rowSize : i*rowSize+rowSize]
		binary.NativeEndian.PutUint16(b[0:2], uint16(slots[r.Primary]))
		binary.NativeEndian.PutUint16(b[2:4], uint16(slots[r.Secondary]))
	}
}

// installTableLocked creates a table from d.rowBuf and swaps it into
// tables[id] in one update: a packet sees the old table or the new one,
// never half of one. The inner map is mmapable (see Open): one copy of
// 256 KiB through a mapping replaces a 65536-element batch update (tens of
// milliseconds). The inner map's fd and mapping are released at once: the
// outer map holds the only reference. The kernel waits for running
// programs before a map-in-map update returns, so afterwards no packet
// uses a table the slot held before. It returns the table's memory.
func (d *Dataplane) installTableLocked(id uint32) (uint64, error) {
	inner, err := ebpf.NewMap(d.innerSpec)
	if err != nil {
		return 0, fmt.Errorf("creating table: %w", err)
	}
	defer inner.Close()
	mem, err := unix.Mmap(inner.FD(), 0, len(d.rowBuf), unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return 0, fmt.Errorf("mapping table: %w", err)
	}
	copy(mem, d.rowBuf)
	if err := unix.Munmap(mem); err != nil {
		return 0, fmt.Errorf("unmapping table: %w", err)
	}
	if err := d.objs.Tables.Put(id, inner); err != nil {
		return 0, fmt.Errorf("swapping table %d: %w", id, err)
	}
	return mapBytes(inner), nil
}

// mapBytes is the kernel's memlock figure for m (0 if unknown).
func mapBytes(m *ebpf.Map) uint64 {
	info, err := m.Info()
	if err != nil {
		return 0
	}
	b, _ := info.Memlock()
	return b
}

// newAddrLocked gives addr a `vip_addrs` entry (not bound) with a fresh
// per-VIP counter index, its counters zeroed.
func (d *Dataplane) newAddrLocked(addr netip.Addr) (*addrState, error) {
	idx, ok := d.vipIdx.peek()
	if !ok {
		return nil, fmt.Errorf("%w (%d)", ErrTooManyVIPs, len(d.vipIdx.used))
	}
	if err := d.objs.VipStats.Put(uint32(idx), d.zeroCounters); err != nil {
		return nil, fmt.Errorf("zeroing counters of %s: %w", addr, err)
	}
	if err := d.objs.VipAddrs.Put(addrKey(addr), &vipdAddrInfo{Vip: uint32(idx)}); err != nil {
		return nil, fmt.Errorf("adding %s: %w", addr, err)
	}
	a := &addrState{idx: uint32(idx)}
	d.vipIdx.take(idx)
	d.addrs[addr] = a
	return a, nil
}

// dropAddrIfUnusedLocked removes the `vip_addrs` entry of an address that
// is neither programmed nor bound, freeing its counter index.
func (d *Dataplane) dropAddrIfUnusedLocked(addr netip.Addr, a *addrState) error {
	if a.vip != nil || a.bound {
		return nil
	}
	if err := d.objs.VipAddrs.Delete(addrKey(addr)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("removing %s: %w", addr, err)
	}
	d.vipIdx.free(int(a.idx))
	delete(d.addrs, addr)
	return nil
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

// serviceBits are the vip_filter bits (VF_*) of VIPs with these services.
func serviceBits(lists ...[]vip.Service) uint64 {
	var bits uint64
	for _, ss := range lists {
		for _, s := range ss {
			if s.Port == 0 {
				bits |= vfAnyPort
			} else {
				bits |= vfPorts
			}
		}
	}
	return bits
}

// vipFilter is the Go side of vip_filter: for each slot, how many
// programmed VIPs contribute each bit, so a VIP's change touches its slot's
// word only (16,384 VIPs program in linear time).
type vipFilter struct {
	ports, any [1 << 16]uint16 // VIPs per slot with VF_PORTS, VF_ANY_PORT
	words      [vipFilterWords]uint64
}

// setVIPFilterLocked makes st's contribution to the filter the bits of its
// services and of those being added (none when st is nil: unprogrammed),
// writing its slot's word when it changes. Bits are set before a VIP's
// entries are added and cleared after they are deleted, so the filter never
// hides a VIP or one of its services.
func (d *Dataplane) setVIPFilterLocked(addr netip.Addr, st *vipState, have uint64) (uint64, error) {
	var want uint64
	if st != nil {
		want = serviceBits(st.services, st.pending)
	}
	if want == have {
		return have, nil
	}
	slot := addrFilterSlot(addr)
	count := func(from, to uint64) {
		for _, c := range []struct {
			bit uint64
			n   *uint16
		}{{vfPorts, &d.vf.ports[slot]}, {vfAnyPort, &d.vf.any[slot]}} {
			switch {
			case to&c.bit != 0 && from&c.bit == 0:
				*c.n++
			case to&c.bit == 0 && from&c.bit != 0:
				*c.n--
			}
		}
	}
	count(have, want)
	if err := d.writeFilterWordLocked(slot >> 5); err != nil {
		count(want, have)
		return have, err
	}
	return want, nil
}

// writeFilterWordLocked writes word w of vip_filter from the counts, if it
// changed.
func (d *Dataplane) writeFilterWordLocked(w uint32) error {
	var word uint64
	for i := range uint32(32) {
		slot := w<<5 | i
		var b uint64
		if d.vf.ports[slot] > 0 {
			b |= vfPorts
		}
		if d.vf.any[slot] > 0 {
			b |= vfAnyPort
		}
		word |= b << (i * 2)
	}
	if word == d.vf.words[w] {
		return nil
	}
	if err := d.objs.VipFilter.Put(w, word); err != nil {
		return fmt.Errorf("writing vip filter: %w", err)
	}
	d.vf.words[w] = word
	return nil
}

// rebuildFilterLocked counts every programmed VIP afresh and writes every
// word: the pinned map's content is unknown after a restart.
func (d *Dataplane) rebuildFilterLocked() error {
	*d.vf = vipFilter{}
	for addr, a := range d.addrs {
		if a.vip == nil {
			continue
		}
		a.vip.fbits = serviceBits(a.vip.services, a.vip.pending)
		slot := addrFilterSlot(addr)
		if a.vip.fbits&vfPorts != 0 {
			d.vf.ports[slot]++
		}
		if a.vip.fbits&vfAnyPort != 0 {
			d.vf.any[slot]++
		}
	}
	for w := range vipFilterWords {
		d.vf.words[w] = ^uint64(0) // unknown: written whatever it holds
		if err := d.writeFilterWordLocked(w); err != nil {
			return err
		}
	}
	return nil
}

// Unprogram removes the VIP: its `vips` entries first (new packets no
// longer match), then its reference on its table. Absent is success.
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
	a := d.addrs[addr]
	if a == nil || a.vip == nil {
		return nil
	}
	st := a.vip
	st.last = nil
	for len(st.keys) > 0 {
		k := st.keys[0]
		if err := d.deleteVIPKey(k); err != nil {
			return fmt.Errorf("unprogramming vip %s service %d/%d: %w", addr, k.proto, k.port, err)
		}
		d.recordKeysLocked(st, st.keys[1:])
	}
	var errs []error
	for _, t := range st.tables {
		errs = append(errs, d.releaseTableLocked(t))
	}
	st.tables = nil
	a.vip = nil
	if fbits, err := d.setVIPFilterLocked(addr, nil, st.fbits); err != nil {
		// Keep the VIP's bits counted: a later Program or Unprogram
		// retries from them.
		a.vip, st.fbits = st, fbits
		errs = append(errs, err)
	} else {
		errs = append(errs, d.dropAddrIfUnusedLocked(addr, a))
	}
	if err := errors.Join(errs...); err != nil {
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
	keys, _, err := d.vipEntries()
	if err != nil {
		return nil, fmt.Errorf("listing programmed vips: %w", err)
	}
	for _, k := range keys {
		seen[k.addr] = true
	}
	out := make([]netip.Addr, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// SetBound makes the bound set (the loop guard: VIPs this node accepts
// decapsulated traffic for, ADDR_BOUND in `vip_addrs`) exactly addrs: adds
// first, then removals. The program's VIP cache keeps bound flags too, so
// it is retired after any change, failed or not.
func (d *Dataplane) SetBound(ctx context.Context, addrs []netip.Addr) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	changed := false
	defer func() {
		if !changed {
			return
		}
		if rerr := d.retireVIPCache(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		if !a.IsValid() {
			return errors.New("setting bound set: invalid address")
		}
		want[a.Unmap()] = true
	}
	for addr := range want {
		a := d.addrs[addr]
		if a != nil && a.bound {
			continue
		}
		if a == nil {
			var err error
			if a, err = d.newAddrLocked(addr); err != nil {
				return fmt.Errorf("binding %s: %w", addr, err)
			}
		}
		changed = true
		if err := d.objs.VipAddrs.Put(addrKey(addr), &vipdAddrInfo{Vip: a.idx, Flags: addrBound}); err != nil {
			_ = d.dropAddrIfUnusedLocked(addr, a)
			return fmt.Errorf("binding %s: %w", addr, err)
		}
		a.bound = true
	}
	for addr, a := range d.addrs {
		if !a.bound || want[addr] {
			continue
		}
		changed = true
		if a.vip != nil {
			if err := d.objs.VipAddrs.Put(addrKey(addr), &vipdAddrInfo{Vip: a.idx}); err != nil {
				return fmt.Errorf("unbinding %s: %w", addr, err)
			}
			a.bound = false
			continue
		}
		a.bound = false
		if err := d.dropAddrIfUnusedLocked(addr, a); err != nil {
			a.bound = true
			return fmt.Errorf("unbinding %s: %w", addr, err)
		}
	}
	return nil
}

// adoptLocked rebuilds the bookkeeping from pinned maps left by a previous
// vipd: addresses, bound flags and counter indexes from `vip_addrs`; VIPs,
// their services and tables from `vips`; backend slot references from the
// tables themselves. Nothing is flushed. Adopted tables are not shared with
// new VIPs (their backends' names are not stored); each VIP's next Program
// moves it to a keyed table. Unreferenced backend slots and tables no VIP
// points at are cleared.
func (d *Dataplane) adoptLocked() error {
	var (
		ak   vipdAddrKey
		ai   vipdAddrInfo
		seen = map[uint32]bool{}
	)
	it := d.objs.VipAddrs.Iterate()
	for it.Next(&ak, &ai) {
		addr, ok := addrFromBytes(ak.Addr, ak.Family)
		if !ok || int(ai.Vip) >= len(d.vipIdx.used) || seen[ai.Vip] {
			return fmt.Errorf("bad vip_addrs entry %v -> %+v", ak, ai)
		}
		seen[ai.Vip] = true
		d.vipIdx.take(int(ai.Vip))
		d.addrs[addr] = &addrState{idx: ai.Vip, bound: ai.Flags&addrBound != 0}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("reading vip_addrs: %w", err)
	}

	keys, infos, err := d.vipEntries()
	if err != nil {
		return err
	}
	for i, k := range keys {
		info, addr := infos[i], k.addr
		if int(info.Table) >= len(d.tableIDs.used) {
			return fmt.Errorf("bad vips entry %+v -> %+v", k, info)
		}
		a := d.addrs[addr]
		if a == nil {
			// A crash between the two maps: give it an entry.
			var err error
			if a, err = d.newAddrLocked(addr); err != nil {
				return err
			}
		}
		if a.vip == nil {
			a.vip = &vipState{}
		}
		st := a.vip
		st.keys = append(st.keys, k)
		d.nkeys++
		if !k.frag {
			st.services = mergeServices(st.services, []vip.Service{{Proto: k.proto, Port: k.port}})
		}
		t := d.tableByID[info.Table]
		if t == nil {
			t = &tableState{id: info.Table}
			d.tableByID[t.id] = t
			d.tableIDs.take(int(t.id))
		}
		if !slices.Contains(st.tables, t) {
			st.tables = append(st.tables, t)
			t.refs++
		}
	}

	backends := make([]vipdBackend, len(d.slots.refs))
	for i := range backends {
		if err := d.objs.Backends.Lookup(uint32(i), &backends[i]); err != nil {
			return fmt.Errorf("reading backend %d: %w", i, err)
		}
	}
	for id, t := range d.tableByID {
		used, bytes, err := d.tableSlotsLocked(id)
		if err != nil {
			return fmt.Errorf("reading table %d: %w", id, err)
		}
		t.bytes = bytes
		for _, s := range used {
			b := backends[s]
			a, ok := addrFromBytes(b.Addr, b.Family)
			if !ok {
				continue // an empty slot: the program drops and counts
			}
			d.slots.adopt(s, slotKey{addr: a, local: b.Flags&backendLocal != 0})
			t.slots = append(t.slots, s)
		}
	}
	for i, b := range backends {
		if b.Family != 0 && d.slots.refs[i] == 0 {
			if err := d.objs.Backends.Put(uint32(i), &vipdBackend{}); err != nil {
				return fmt.Errorf("clearing unused backend %d: %w", i, err)
			}
		}
	}
	for id, used := range d.tableIDs.used {
		if !used {
			if err := d.objs.Tables.Delete(uint32(id)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("clearing unused table %d: %w", id, err)
			}
		}
	}
	if err := d.rebuildFilterLocked(); err != nil {
		return err
	}
	if n := len(d.tableByID); n > 0 || len(d.addrs) > 0 {
		d.log.Info("adopted pinned vips", "vips", len(d.addrs), "tables", n, "backends", d.slots.inUse(), "state", "adopted")
	}
	return nil
}

func mergeServices(a, b []vip.Service) []vip.Service {
	out := slices.Concat(a, b)
	slices.SortFunc(out, func(a, b vip.Service) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out)
}

// tableSlotsLocked lists the distinct backend slots table id points at,
// and the table's memory.
func (d *Dataplane) tableSlotsLocked(id uint32) ([]uint32, uint64, error) {
	var inner *ebpf.Map
	err := d.objs.Tables.Lookup(id, &inner)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		// A VIP without a table (a crash between two updates): the
		// program drops and counts its packets until it is programmed.
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("looking up table %d: %w", id, err)
	}
	defer inner.Close()
	var cursor ebpf.MapBatchCursor
	n, err := inner.BatchLookup(&cursor, d.rowKeys, d.rowVals, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, 0, fmt.Errorf("reading table %d: %w", id, err)
	}
	seen := map[uint32]bool{}
	var out []uint32
	for _, rp := range d.rowVals[:n] {
		for _, s := range []uint32{uint32(rp.R[0].Primary), uint32(rp.R[0].Secondary), uint32(rp.R[1].Primary), uint32(rp.R[1].Secondary)} {
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
	return out, mapBytes(inner), nil
}

var _ vip.Dataplane = (*Dataplane)(nil)
