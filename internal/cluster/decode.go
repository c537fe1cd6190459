package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
)

// Errors of DecodeNodeState.
var (
	// ErrWrongNode: the document is about another node than the one polled
	// (a swapped URL in the config).
	ErrWrongNode = errors.New("wrong node")
	// ErrBadDocument: the document is not a valid node state.
	ErrBadDocument = errors.New("invalid node state")
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
		if !addr.IsValid() {
			return nil, fmt.Errorf("%w: empty vip address", ErrBadDocument)
		}
		if addr.Zone() != "" || addr.Is4In6() {
			return nil, fmt.Errorf("%w: vip %s: not a plain IPv4 or IPv6 address", ErrBadDocument, addr)
		}
		// A present state was checked by UnmarshalText; an absent one is
		// the zero value.
		if _, err := ParseServeState(string(v.State)); err != nil {
			return nil, fmt.Errorf("%w: vip %s: %w", ErrBadDocument, addr, err)
		}
	}
	if st.VIPs == nil {
		st.VIPs = map[netip.Addr]VIPState{}
	}
	return &st, nil
}

// Clone returns a deep copy of st (nil for nil): the VIP map is not shared.
func (st *NodeState) Clone() *NodeState {
	if st == nil {
		return nil
	}
	c := *st
	c.VIPs = maps.Clone(st.VIPs)
	return &c
}

// Equal reports whether a and b are the same document (both nil counts).
func (st *NodeState) Equal(o *NodeState) bool {
	if st == nil || o == nil {
		return st == o
	}
	return st.Node == o.Node && st.Generation == o.Generation && maps.Equal(st.VIPs, o.VIPs)
}
