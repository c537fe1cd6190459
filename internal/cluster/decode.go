package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
)

// DecodeNodeState parses and validates a state document. Unknown fields are
// ignored (a newer peer may add some). If node is not empty, the document's
// node name must equal it.
func DecodeNodeState(data []byte, node string) (*NodeState, error) {
	var st NodeState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadDocument, err)
	}
	if st.Node == "" {
		return nil, fmt.Errorf("%w: missing node name", ErrBadDocument)
	}
	if node != "" && st.Node != node {
		return nil, fmt.Errorf("%w: document is from %q, expected %q", ErrWrongNode, st.Node, node)
	}
	for addr, v := range st.VIPs {
		if err := plainAddr(addr); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadDocument, err)
		}
		// A present state was checked by UnmarshalText; an absent one is
		// the zero value.
		if _, err := ParseServeState(string(v.State)); err != nil {
			return nil, fmt.Errorf("%w: vip %s: %w", ErrBadDocument, addr, err)
		}
	}
	if err := st.Digests.validate(); err != nil {
		return nil, fmt.Errorf("%w: digests: %w", ErrBadDocument, err)
	}
	if st.VIPs == nil {
		st.VIPs = map[netip.Addr]VIPState{}
	}
	return &st, nil
}

// plainAddr accepts what a VIP address may be in a document: a plain IPv4
// or IPv6 address.
func plainAddr(addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("empty vip address")
	}
	if addr.Zone() != "" || addr.Is4In6() {
		return fmt.Errorf("vip %s: not a plain IPv4 or IPv6 address", addr)
	}
	return nil
}

func (d *Digests) validate() error {
	if d == nil {
		return nil
	}
	for addr := range d.VIPs {
		if err := plainAddr(addr); err != nil {
			return err
		}
	}
	if d.TablesAt < 0 {
		return fmt.Errorf("tables_at %d is negative", d.TablesAt)
	}
	return nil
}

// Clone returns a deep copy of st (nil for nil): the VIP map, the weight
// and the digests are not shared.
func (st *NodeState) Clone() *NodeState {
	if st == nil {
		return nil
	}
	c := *st
	c.VIPs = maps.Clone(st.VIPs)
	if st.Weight != nil {
		w := *st.Weight
		c.Weight = &w
	}
	c.Digests = st.Digests.Clone()
	return &c
}

// Equal reports whether a and b are the same document (both nil counts).
func (st *NodeState) Equal(o *NodeState) bool {
	if st == nil || o == nil {
		return st == o
	}
	return st.Node == o.Node && st.Generation == o.Generation && maps.Equal(st.VIPs, o.VIPs) &&
		equalWeight(st.Weight, o.Weight) && st.Digests.Equal(o.Digests) && st.RestartUntil.Equal(o.RestartUntil)
}

func equalWeight(a, b *uint32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
