// Package world reads what a lab node really has, independently of what its
// vipd says: the addresses on lo and the dataplane's pinned maps (the VIPs
// programmed, their forwarding tables, the bound set). `labtool world` runs
// it inside a node's namespace; the end-to-end tests of internal/e2e compare
// its answer with the node's `vipctl status`.
//
// The maps are read through their pins with the layout of bpf/vipd.h,
// checked against each map's key and value sizes, so a change of layout is
// an error here rather than a silent misreading.
package world

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
)

// Node is what one node has.
type Node struct {
	// Lo lists the addresses on lo (loopback addresses left out).
	Lo []netip.Addr `json:"lo"`
	// VIPs are the programmed VIPs, from the `vips` map and their tables.
	VIPs []VIP `json:"vips"`
	// Bound is the dataplane's bound set (the loop guard's list).
	Bound []netip.Addr `json:"bound"`
	// Error says why the maps could not be read (no pins yet, say).
	Error string `json:"error,omitempty"`
}

// VIP is one programmed VIP: its services and its table.
type VIP struct {
	Addr netip.Addr `json:"addr"`
	// Services as vipd.toml writes them: "tcp/80", "tcp/*".
	Services []string `json:"services"`
	// Table is nil when the VIP has no table (`tables` has no entry).
	Table *Table `json:"table,omitempty"`
}

// Table sums a forwarding table up by the addresses in its rows.
type Table struct {
	// Digest is TableDigest of the rows: equal digests, equal tables.
	Digest string `json:"digest"`
	// Primary and Secondary count the rows per backend address.
	Primary   map[netip.Addr]int `json:"primary"`
	Secondary map[netip.Addr]int `json:"secondary"`
	// Local lists the backends flagged as this node.
	Local []netip.Addr `json:"local"`
	// Empty counts row ends pointing at an empty backend slot.
	Empty int `json:"empty"`
}

// Row is one table row as addresses.
type Row struct{ Primary, Secondary netip.Addr }

// TableDigest hashes rows in order (SHA-256 over each row's two addresses
// as 16 bytes each, IPv4 mapped; an invalid address as 16 zeros), so a
// table read from the maps and one computed with dataplane.BuildTable can
// be compared in one string.
func TableDigest(rows []Row) string {
	h := sha256.New()
	for _, r := range rows {
		var p, s [16]byte
		if r.Primary.IsValid() {
			p = r.Primary.As16()
		}
		if r.Secondary.IsValid() {
			s = r.Secondary.As16()
		}
		h.Write(p[:])
		h.Write(s[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The layouts of bpf/vipd.h.
type (
	vipKey struct {
		Addr   [16]byte
		Port   uint16
		Proto  uint8
		Family uint8
	}
	vipInfo struct {
		ID    uint32
		Flags uint32
	}
	backend struct {
		Addr   [16]byte
		Family uint8
		Flags  uint8
		Pad    uint16
	}
	addrKey struct {
		Addr   [16]byte
		Family uint8
		Pad    [3]uint8
	}
)

const backendLocal = 1 // BACKEND_LOCAL

func addrOf(b [16]byte, family uint8) (netip.Addr, bool) {
	switch family {
	case 4:
		return netip.AddrFrom4([4]byte(b[:4])), true
	case 6:
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// Read reads lo (in the caller's network namespace) and the maps pinned
// under pinPath. A map that cannot be read is reported in Node.Error; lo is
// read anyway.
func Read(pinPath string) (Node, error) {
	lo, err := loAddrs()
	if err != nil {
		return Node{}, err
	}
	n := ReadMaps(pinPath)
	n.Lo = lo
	return n, nil
}

// ReadMaps reads the maps pinned under pinPath only (pins are files: any
// network namespace will do). Node.Error says what could not be read.
func ReadMaps(pinPath string) Node {
	var n Node
	if err := n.readMaps(pinPath); err != nil {
		n = Node{Error: err.Error()}
	}
	return n
}

func loAddrs() ([]netip.Addr, error) {
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		return nil, fmt.Errorf("finding lo: %w", err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("listing the addresses on lo: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || ip.Unmap().IsLoopback() {
			continue
		}
		out = append(out, ip.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

func openPinned(dir, name string, key, value any) (*ebpf.Map, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("opening pinned map %s: %w", name, err)
	}
	if key != nil && int(m.KeySize()) != binary.Size(key) {
		m.Close()
		return nil, fmt.Errorf("map %s: key of %d bytes, bpf/vipd.h of this tree says %d", name, m.KeySize(), binary.Size(key))
	}
	if value != nil && int(m.ValueSize()) != binary.Size(value) {
		m.Close()
		return nil, fmt.Errorf("map %s: value of %d bytes, bpf/vipd.h of this tree says %d", name, m.ValueSize(), binary.Size(value))
	}
	return m, nil
}

func (n *Node) readMaps(dir string) error {
	vips, err := openPinned(dir, "vips", vipKey{}, vipInfo{})
	if err != nil {
		return err
	}
	defer vips.Close()
	tables, err := openPinned(dir, "tables", uint32(0), nil)
	if err != nil {
		return err
	}
	defer tables.Close()
	backends, err := openPinned(dir, "backends", uint32(0), backend{})
	if err != nil {
		return err
	}
	defer backends.Close()
	bound, err := openPinned(dir, "bound", addrKey{}, uint8(0))
	if err != nil {
		return err
	}
	defer bound.Close()

	byAddr := map[netip.Addr]*VIP{}
	ids := map[netip.Addr]uint32{}
	var (
		k    vipKey
		info vipInfo
	)
	it := vips.Iterate()
	for it.Next(&k, &info) {
		a, ok := addrOf(k.Addr, k.Family)
		if !ok {
			return fmt.Errorf("vips: an entry of family %d", k.Family)
		}
		v := byAddr[a]
		if v == nil {
			v = &VIP{Addr: a}
			byAddr[a] = v
			ids[a] = info.ID
		} else if ids[a] != info.ID {
			return fmt.Errorf("vips: %s points at tables %d and %d", a, ids[a], info.ID)
		}
		v.Services = append(v.Services, service(k.Proto, k.Port))
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("reading vips: %w", err)
	}
	cache := map[uint32]backend{}
	for a, v := range byAddr {
		slices.Sort(v.Services)
		t, err := readTable(tables, backends, ids[a], cache)
		if err != nil {
			return fmt.Errorf("reading the table of %s: %w", a, err)
		}
		v.Table = t
		n.VIPs = append(n.VIPs, *v)
	}
	slices.SortFunc(n.VIPs, func(a, b VIP) int { return a.Addr.Compare(b.Addr) })

	var (
		bk  addrKey
		val uint8
	)
	bit := bound.Iterate()
	for bit.Next(&bk, &val) {
		if a, ok := addrOf(bk.Addr, bk.Family); ok {
			n.Bound = append(n.Bound, a)
		}
	}
	if err := bit.Err(); err != nil {
		return fmt.Errorf("reading bound: %w", err)
	}
	slices.SortFunc(n.Bound, netip.Addr.Compare)
	return nil
}

func service(proto uint8, port uint16) string {
	p := fmt.Sprintf("proto%d", proto)
	switch proto {
	case 6:
		p = "tcp"
	case 17:
		p = "udp"
	}
	if port == 0 {
		return p + "/*"
	}
	return fmt.Sprintf("%s/%d", p, port)
}

// rowsPerBatch bounds one BatchLookup; a table has 65536 rows.
const rowsPerBatch = 8192

// slot is a backend slot as a table row points at it.
type slot struct {
	read  bool
	addr  netip.Addr // invalid: an empty slot
	a16   [16]byte
	local bool
	// rows in which it is primary and secondary
	primary, secondary int
}

func readTable(tables, backends *ebpf.Map, id uint32, cache map[uint32]backend) (*Table, error) {
	var inner *ebpf.Map
	err := tables.Lookup(id, &inner)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer inner.Close()
	if inner.ValueSize() != 8 {
		return nil, fmt.Errorf("rows of %d bytes, bpf/vipd.h of this tree says 8", inner.ValueSize())
	}
	// Rows point at slots of `backends`: resolve each slot once (the
	// tests read every table several times a second).
	slots := make([]slot, backends.MaxEntries())
	resolve := func(i uint32) (*slot, error) {
		if int(i) >= len(slots) {
			return nil, fmt.Errorf("a row points at backend %d of %d", i, len(slots))
		}
		s := &slots[i]
		if s.read {
			return s, nil
		}
		b, ok := cache[i]
		if !ok {
			if err := backends.Lookup(i, &b); err != nil {
				return nil, fmt.Errorf("reading backend %d: %w", i, err)
			}
			cache[i] = b
		}
		s.read = true
		if a, ok := addrOf(b.Addr, b.Family); ok {
			s.addr, s.a16, s.local = a, a.As16(), b.Flags&backendLocal != 0
		}
		return s, nil
	}
	digest := sha256.New()
	buf := make([]byte, 0, rowsPerBatch*32)
	rows, empty := 0, 0
	keys := make([]uint32, rowsPerBatch)
	vals := make([]uint64, rowsPerBatch) // struct row {u32 primary, secondary}
	var cursor ebpf.MapBatchCursor
	for {
		n, err := inner.BatchLookup(&cursor, keys, vals, nil)
		buf = buf[:0]
		for i := range n {
			p, err := resolve(uint32(vals[i]))
			if err != nil {
				return nil, err
			}
			s, err := resolve(uint32(vals[i] >> 32))
			if err != nil {
				return nil, err
			}
			p.primary++
			s.secondary++
			for _, x := range []*slot{p, s} {
				if !x.addr.IsValid() {
					empty++
				}
			}
			// As TableDigest writes a row (an empty slot as zeros).
			buf = append(buf, p.a16[:]...)
			buf = append(buf, s.a16[:]...)
		}
		digest.Write(buf)
		rows += n
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading rows: %w", err)
		}
	}
	if uint32(rows) != inner.MaxEntries() {
		return nil, fmt.Errorf("read %d rows of %d", rows, inner.MaxEntries())
	}
	t := &Table{Digest: hex.EncodeToString(digest.Sum(nil)), Primary: map[netip.Addr]int{}, Secondary: map[netip.Addr]int{}, Empty: empty}
	for _, s := range slots {
		if !s.read || !s.addr.IsValid() {
			continue
		}
		if s.primary > 0 {
			t.Primary[s.addr] += s.primary
		}
		if s.secondary > 0 {
			t.Secondary[s.addr] += s.secondary
		}
		if s.local && !slices.Contains(t.Local, s.addr) {
			t.Local = append(t.Local, s.addr)
		}
	}
	slices.SortFunc(t.Local, netip.Addr.Compare)
	return t, nil
}

// Has reports whether addrs holds a.
func Has(addrs []netip.Addr, a netip.Addr) bool { return slices.Contains(addrs, a) }

// VIP returns the programmed VIP a, if any.
func (n Node) VIP(a netip.Addr) (VIP, bool) {
	for _, v := range n.VIPs {
		if v.Addr == a {
			return v, true
		}
	}
	return VIP{}, false
}
