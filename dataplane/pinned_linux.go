//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/vipd/vipd/vip"
)

// ReadPinned reads the maps pinned under pinPath, read-only and in this
// tree's layout (pins of another layout are an error, never misread): the
// programmed VIPs and their tables, the backend slots the tables point at,
// and the bound set. The pins are files: any network namespace will do.
// A VIP whose entries point at different tables (a vipd stopped in the
// middle of moving it) is an error too.
func ReadPinned(pinPath string) (Pinned, error) {
	spec, err := loadVipd()
	if err != nil {
		return Pinned{}, fmt.Errorf("reading bpf object: %w", err)
	}
	open := func(name string) (*ebpf.Map, error) {
		ms := spec.Maps[name]
		m, err := ebpf.LoadPinnedMap(filepath.Join(pinPath, name), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("opening pinned map %s: %w", name, err)
		}
		if m.Type() != ms.Type || m.KeySize() != ms.KeySize || m.ValueSize() != ms.ValueSize {
			m.Close()
			return nil, fmt.Errorf("pinned map %s: %w: %v key %d value %d, this tree's program has %v key %d value %d",
				name, ebpf.ErrMapIncompatible, m.Type(), m.KeySize(), m.ValueSize(), ms.Type, ms.KeySize, ms.ValueSize)
		}
		return m, nil
	}
	var objs vipdMaps
	for _, p := range []struct {
		name string
		m    **ebpf.Map
	}{{"vips4", &objs.Vips4}, {"vips6", &objs.Vips6}, {"tables", &objs.Tables}, {"backends", &objs.Backends},
		{"vip_addrs", &objs.VipAddrs}} {
		if *p.m, err = open(p.name); err != nil {
			objs.Close()
			return Pinned{}, err
		}
	}
	defer objs.Close()
	d := &Dataplane{objs: vipdObjects{vipdMaps: objs}}

	out := Pinned{Tables: map[uint32][]Row{}, Backends: map[uint32]PinnedBackend{}}
	keys, infos, err := d.vipEntries()
	if err != nil {
		return Pinned{}, err
	}
	byAddr := map[netip.Addr]*PinnedVIP{}
	for i, k := range keys {
		v := byAddr[k.addr]
		if v == nil {
			v = &PinnedVIP{Addr: k.addr, Table: infos[i].Table}
			byAddr[k.addr] = v
		} else if v.Table != infos[i].Table {
			return Pinned{}, fmt.Errorf("vip %s points at tables %d and %d", k.addr, v.Table, infos[i].Table)
		}
		if !k.frag {
			v.Services = append(v.Services, vip.Service{Proto: k.proto, Port: k.port})
		}
	}
	for _, v := range byAddr {
		v.Services = mergeServices(v.Services, nil)
		rows, ok, err := readTable(objs.Tables, v.Table, out.Tables)
		if err != nil {
			return Pinned{}, fmt.Errorf("reading the table of %s: %w", v.Addr, err)
		}
		v.HasTable = ok
		for _, r := range rows {
			for _, s := range []uint32{r.Primary, r.Secondary} {
				if _, seen := out.Backends[s]; seen {
					continue
				}
				var b vipdBackend
				if err := objs.Backends.Lookup(s, &b); err != nil {
					return Pinned{}, fmt.Errorf("reading backend %d: %w", s, err)
				}
				if a, ok := addrFromBytes(b.Addr, b.Family); ok {
					out.Backends[s] = PinnedBackend{Addr: a, Local: b.Flags&backendLocal != 0}
				}
			}
		}
		out.VIPs = append(out.VIPs, *v)
	}
	slices.SortFunc(out.VIPs, func(a, b PinnedVIP) int { return a.Addr.Compare(b.Addr) })

	var (
		ak vipdAddrKey
		ai vipdAddrInfo
	)
	it := objs.VipAddrs.Iterate()
	for it.Next(&ak, &ai) {
		if a, ok := addrFromBytes(ak.Addr, ak.Family); ok && ai.Flags&addrBound != 0 {
			out.Bound = append(out.Bound, a)
		}
	}
	if err := it.Err(); err != nil {
		return Pinned{}, fmt.Errorf("reading vip_addrs: %w", err)
	}
	slices.SortFunc(out.Bound, netip.Addr.Compare)
	return out, nil
}

// readTable reads table id into cache (each table once) and returns its
// rows; false when there is none.
func readTable(tables *ebpf.Map, id uint32, cache map[uint32][]Row) ([]Row, bool, error) {
	if rows, ok := cache[id]; ok {
		return rows, true, nil
	}
	var inner *ebpf.Map
	err := tables.Lookup(id, &inner)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer inner.Close()
	pairs := make([]vipdRowPair, inner.MaxEntries())
	keys := make([]uint32, len(pairs))
	var cursor ebpf.MapBatchCursor
	n, err := inner.BatchLookup(&cursor, keys, pairs, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, false, err
	}
	if n*2 != TableRows {
		return nil, false, fmt.Errorf("table %d: %d rows, want %d", id, n*2, TableRows)
	}
	rows := make([]Row, 0, TableRows)
	for _, p := range pairs[:n] {
		for _, r := range p.R {
			rows = append(rows, Row{Primary: uint32(r.Primary), Secondary: uint32(r.Secondary)})
		}
	}
	cache[id] = rows
	return rows, true, nil
}
