// Package bird implements vip.Advertiser by generating a BIRD 2 OSPF
// configuration that lists the announced VIP routes explicitly and reloading
// BIRD through birdc.
package bird

import (
	"net/netip"
	"time"
)

// Config is the [routing.bird] section of vipd.toml. The TOML tags are the
// schema; internal/config decodes the section into it (unknown keys are
// rejected there) and calls Validate. VIPs is filled by the config loader
// from the [[vip]] sections.
type Config struct {
	// Mode "full" writes a complete bird.conf; "include" writes only the VIP
	// routes, for an operator's own bird.conf to include.
	Mode       string     `toml:"mode"`
	ConfigFile string     `toml:"config_file"` // file vipd writes
	Socket     string     `toml:"socket"`      // birdc control socket
	Bird       string     `toml:"bird"`        // bird binary, for bird -p (default "bird")
	Birdc      string     `toml:"birdc"`       // default "birdc"
	RouterID   netip.Addr `toml:"router_id"`   // default: the node's router id
	// DrainMetric: with drain = "deprefer", the OSPF external metric of a
	// draining VIP's route.
	Drain       string        `toml:"drain"` // "withdraw" (default) | "deprefer"
	DrainMetric uint32        `toml:"drain_metric"`
	Debounce    time.Duration `toml:"debounce"` // default 50ms, at most 200ms
	OSPF        []OSPF        `toml:"ospf"`

	VIPs []VIPRoute `toml:"-"`
}

// OSPF is one OSPF instance ([[routing.bird.ospf]]): version 2 carries the
// IPv4 VIPs, version 3 the IPv6 ones.
type OSPF struct {
	Name      string `toml:"name"`
	Version   int    `toml:"version"` // 2 or 3
	ECMP      bool   `toml:"ecmp"`
	IgnoreMTU bool   `toml:"ignore_mtu"` // needs a BIRD with the ignoremtu patch
	Areas     []Area `toml:"area"`
}

// Area is one OSPF area.
type Area struct {
	ID         string      `toml:"id"` // "0" or dotted quad
	Interfaces []Interface `toml:"interface"`
}

// Interface is one OSPF interface pattern.
type Interface struct {
	Name       string `toml:"name"` // interface name or BIRD pattern ("eth*")
	Type       string `toml:"type"` // "ptp" | "broadcast"
	Cost       uint32 `toml:"cost"`
	Hello      uint32 `toml:"hello"`          // seconds
	Dead       uint32 `toml:"dead"`           // seconds
	Retransmit uint32 `toml:"retransmit"`     // seconds
	AuthType   string `toml:"authentication"` // "none" | "simple" | "cryptographic"
	Password   string `toml:"password"`
	BFD        bool   `toml:"bfd"`
	Stub       bool   `toml:"stub"`
}

// RouteAttrs are per-VIP OSPF attributes ([vip.ospf]).
type RouteAttrs struct {
	Metric uint32 `toml:"metric"` // OSPF external metric (default 20)
	Type   int    `toml:"type"`   // external type 1 or 2 (default 2)
	Tag    uint32 `toml:"tag"`
}

// VIPRoute is a configured VIP the advertiser may announce.
type VIPRoute struct {
	Prefix netip.Prefix
	Attrs  RouteAttrs
}

// Validate checks the section. Errors are fielderr errors with key paths
// relative to the section ("ospf[0].area[0].interface[1].type").
func (c *Config) Validate() error {
	return nil // filled in by the routing/bird work
}
