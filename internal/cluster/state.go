// Package cluster is what one vipd node knows of the others: the node-state
// document every node serves read-only over HTTP (per VIP: active, draining
// or inactive, and the local service health, with a generation number), the
// server that publishes this node's document, the poller that fetches every
// other member's, and the membership view the daemon shows in status.
//
// The package decides nothing about VIPs: the poller reports each member's
// document (or its failure after fall misses) through a callback, and the
// state machine in package vip builds the forwarding tables from them.
package cluster

import (
	"fmt"
	"net/netip"
)

// ServeState is what a node publishes to its peers about one VIP: whether
// they may send it new flows, only established ones, or none.
type ServeState string

// Serve states, as written in the node-state document.
const (
	// StateActive: the node takes new flows for the VIP (primary).
	StateActive ServeState = "active"
	// StateDraining: peers keep the node only as second hop, so established
	// flows still reach it by second chance but new flows go elsewhere.
	StateDraining ServeState = "draining"
	// StateInactive: peers drop the node from the VIP's table.
	StateInactive ServeState = "inactive"
)

// ParseServeState parses "active", "draining" or "inactive".
func ParseServeState(s string) (ServeState, error) {
	switch st := ServeState(s); st {
	case StateActive, StateDraining, StateInactive:
		return st, nil
	}
	return "", fmt.Errorf("serve state %q: want active, draining or inactive", s)
}

// String returns the state's word.
func (s ServeState) String() string { return string(s) }

// MarshalText implements encoding.TextMarshaler; it refuses an invalid
// state rather than publish a word peers would reject.
func (s ServeState) MarshalText() ([]byte, error) {
	if _, err := ParseServeState(string(s)); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *ServeState) UnmarshalText(b []byte) error {
	st, err := ParseServeState(string(b))
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// VIPState is one VIP's entry in a NodeState.
type VIPState struct {
	State   ServeState `json:"state"`
	Healthy bool       `json:"healthy"`
	Reason  string     `json:"reason,omitempty"`
}

// NodeState is the document every vipd serves read-only over HTTP to its
// peers, and that each director polls from every cluster member.
type NodeState struct {
	Node string `json:"node"`
	// Generation increases whenever anything in the document changes.
	Generation uint64                  `json:"generation"`
	VIPs       map[netip.Addr]VIPState `json:"vips"`
}
