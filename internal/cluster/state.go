// Package cluster is what one vipd node knows of the others: the node-state
// document every node publishes (per VIP: active, draining or inactive, and
// the local service health, with a generation number, the digests of its
// cluster configuration and tables), signed with the cluster key; the
// server that serves this node's document over HTTP and the poller that
// fetches every other member's (backend "poll"; package cluster/etcd is
// backend "etcd"); the verifier that refuses unsigned, forged, replayed and
// stale documents; and the membership view the daemon shows in status.
//
// The package decides nothing about VIPs: a Source (the poller, or the etcd
// backend) hands the member states to a Consumer as Updates, and the state
// machine in package vip builds the forwarding tables from them.
// docs/cluster.md has the threat model and the key rotation steps.
package cluster

import (
	"fmt"
	"net/netip"
	"time"
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
	// RampFrom, published with slow start on, is when the node last
	// became a primary for the VIP (active and healthy: a start, a return,
	// an undrain, a recovery): every director ramps the node's weight from
	// this time, by the node's own clock, so all step at the same moments
	// whenever each heard of it. Zero (absent): not primary, or no slow
	// start.
	RampFrom time.Time `json:"ramp_from,omitzero"`
}

// NodeState is the document every vipd serves read-only over HTTP to its
// peers, and that each director polls from every cluster member.
type NodeState struct {
	Node string `json:"node"`
	// Generation increases whenever anything in the document changes.
	Generation uint64                  `json:"generation"`
	VIPs       map[netip.Addr]VIPState `json:"vips"`
	// Weight, when present, is the member's current weight as it sees it;
	// vipd does not publish it. Directors build with the configured
	// weight ramped from each VIP's RampFrom (slow start), which every
	// director computes alike without waiting for a poll to land.
	Weight *uint32 `json:"weight,omitempty"`
	// Digests of the member's cluster configuration and of the tables it
	// built, for the consistency check; absent from an older vipd.
	Digests *Digests `json:"digests,omitempty"`
	// RestartUntil, when set, says the node's vipd is exiting for an
	// upgrade restart and everything this document says stays in force
	// meanwhile (the XDP program, the routes and the addresses on lo are
	// left in place): a poller keeps the member as this document has it,
	// without failing it for missed polls, until this time by the node's
	// clock (and at most MaxRestartHold after it received the document).
	// The next vipd's first document ends the hold. Zero: not restarting.
	RestartUntil time.Time `json:"restart_until,omitzero"`
}

// MaxRestartHold bounds how long a poller keeps a restarting member
// (NodeState.RestartUntil) from the moment it received the document,
// whatever the member's clock says.
const MaxRestartHold = 10 * time.Minute
