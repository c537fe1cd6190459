// Package bgp implements vip.Advertiser with an embedded GoBGP v3 speaker.
package bgp

import (
	"net/netip"
	"time"
)

// Config is the [routing.bgp] section of vipd.toml. The TOML tags are the
// schema; internal/config decodes the section into it (unknown keys are
// rejected there) and calls Validate. VIPs is not read from the section: the
// config loader fills it from the [[vip]] sections.
type Config struct {
	ASN      uint32     `toml:"asn"`
	RouterID netip.Addr `toml:"router_id"` // default: the node's router id
	// ListenAddresses and ListenPort: where to accept BGP sessions.
	// ListenPort 0 means 179; -1 means do not listen (active sessions only).
	ListenAddresses []netip.Addr `toml:"listen_addresses"`
	ListenPort      int32        `toml:"listen_port"`
	// NextHop4/NextHop6: next hop announced with IPv4/IPv6 VIPs (default:
	// the node's underlay address of that family).
	NextHop4 netip.Addr `toml:"next_hop_v4"`
	NextHop6 netip.Addr `toml:"next_hop_v6"`
	// GracefulRestart: advertise RFC 4724 restarting-speaker capability.
	GracefulRestart GracefulRestart `toml:"graceful_restart"`
	// Drain: "withdraw" (default) or "deprefer" (announce with DrainAttrs).
	Drain      string     `toml:"drain"`
	DrainAttrs RouteAttrs `toml:"drain_attributes"`
	Neighbors  []Neighbor `toml:"neighbor"`

	VIPs []VIPRoute `toml:"-"`
}

// GracefulRestart configures RFC 4724.
type GracefulRestart struct {
	Enabled     bool          `toml:"enabled"`
	RestartTime time.Duration `toml:"restart_time"` // default 120s
}

// Neighbor is one BGP peer ([[routing.bgp.neighbor]]).
type Neighbor struct {
	Address      netip.Addr    `toml:"address"`
	ASN          uint32        `toml:"asn"`
	Port         uint16        `toml:"port"` // default 179
	LocalAddress netip.Addr    `toml:"local_address"`
	Password     string        `toml:"password"` // TCP MD5
	MultihopTTL  uint8         `toml:"ebgp_multihop_ttl"`
	HoldTime     time.Duration `toml:"hold_time"`          // default 90s
	Keepalive    time.Duration `toml:"keepalive_interval"` // default hold/3
	Passive      bool          `toml:"passive"`
}

// RouteAttrs are path attributes for a VIP route ([vip.bgp], or
// [routing.bgp.drain_attributes] which are added on top when draining).
type RouteAttrs struct {
	Communities      []string `toml:"communities"`       // "65000:100" or well-known names
	LargeCommunities []string `toml:"large_communities"` // "65000:1:2"
	MED              *uint32  `toml:"med"`
	LocalPref        *uint32  `toml:"local_pref"` // iBGP only
	Prepend          uint8    `toml:"as_path_prepend"`
}

// VIPRoute is a configured VIP the advertiser may announce.
type VIPRoute struct {
	Prefix netip.Prefix
	Attrs  RouteAttrs
}

// Validate checks the section. Errors are fielderr errors with key paths
// relative to the section ("neighbor[1].asn").
func (c *Config) Validate() error {
	return nil // filled in by the routing/bgp work
}
