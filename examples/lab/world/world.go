// Package world reads what a lab node really has, independently of what its
// vipd says: the addresses on lo and the dataplane's pinned maps (the VIPs
// programmed, their forwarding tables, the bound set). `labtool world` runs
// it inside a node's namespace; the end-to-end tests of internal/e2e compare
// its answer with the node's `vipctl status`.
//
// The maps are read through their pins by dataplane.ReadPinned, in the
// layout of this tree's XDP program: a pin of another layout is an error
// here rather than a silent misreading.
package world

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vipd/vipd/dataplane"
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
// table read from the maps and one computed with dataplane.BuildSharedTable
// (the dataplane stores one table per backend set) can be compared in one
// string.
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

func (n *Node) readMaps(dir string) error {
	p, err := dataplane.ReadPinned(dir)
	if err != nil {
		return err
	}
	for _, pv := range p.VIPs {
		v := VIP{Addr: pv.Addr}
		for _, s := range pv.Services {
			v.Services = append(v.Services, s.String())
		}
		slices.Sort(v.Services)
		if pv.HasTable {
			v.Table = summarize(p.Tables[pv.Table], p.Backends)
		}
		n.VIPs = append(n.VIPs, v)
	}
	n.Bound = p.Bound
	return nil
}

// summarize sums rows up by the addresses of the backend slots they point
// at (a slot missing from backends is empty).
func summarize(rows []dataplane.Row, backends map[uint32]dataplane.PinnedBackend) *Table {
	t := &Table{Primary: map[netip.Addr]int{}, Secondary: map[netip.Addr]int{}}
	wrows := make([]Row, len(rows))
	for i, r := range rows {
		p, pok := backends[r.Primary]
		s, sok := backends[r.Secondary]
		wrows[i] = Row{Primary: p.Addr, Secondary: s.Addr}
		for _, x := range []struct {
			b     dataplane.PinnedBackend
			ok    bool
			count map[netip.Addr]int
		}{{p, pok, t.Primary}, {s, sok, t.Secondary}} {
			if !x.ok || !x.b.Addr.IsValid() {
				t.Empty++
				continue
			}
			x.count[x.b.Addr]++
			if x.b.Local && !slices.Contains(t.Local, x.b.Addr) {
				t.Local = append(t.Local, x.b.Addr)
			}
		}
	}
	t.Digest = TableDigest(wrows)
	slices.SortFunc(t.Local, netip.Addr.Compare)
	return t
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
