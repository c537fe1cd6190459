// Package bgp implements routing.Advertiser with an embedded GoBGP v3
// speaker.
//
// The Speaker owns one GoBGP BgpServer. It imports nothing from its peers
// (the global import policy accepts only locally originated paths), exports
// only the VIP routes the state machine asked for (the export policy accepts
// only local paths whose prefix is a configured VIP), and refuses to announce
// a prefix that is not a configured VIP.
//
// Lifecycle:
//
//	s, err := bgp.New(cfg, log.Named("bgp"))      // validates, starts nothing
//	err = s.Start(ctx, bgp.StartOptions{Routes: adopted, Restarting: adopted != nil})
//	err = s.SetVIPs(ctx, vips)                   // on a config reload
//	routes, err := s.SetRoutes(ctx, wanted)      // as often as the state changes
//	ex, err := s.Exported(ctx)                   // what each peer is really sent
//	err = s.Resync(ctx)                          // when ex disagrees with routes
//	err = s.Close(ctx)  // shutdown/drain: withdraw, wait for the peers, Cease
//	err = s.Abandon()   // upgrade restart instead: no Cease, GR keeps routes
//
// A vipd that died (SIGKILL, a crash) and one that exited for an upgrade
// look the same to a peer: the session closed without a Cease, and a
// graceful-restart helper keeps the routes as stale. Either way the next
// vipd starts with the routes the previous one announced and Restarting
// set: they are in the RIB before any neighbor is configured, the OPEN
// carries the restart bits, and End-of-RIB follows those routes, so the
// helper never drops one that is re-announced and flushes only the others.
package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/fielderr"
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
	// DrainAttrs are added on top of a VIP's own attributes when its route
	// is announced as draining (routing.Route.Draining). Whether a draining
	// VIP is announced at all is the drain policy ([routing.bgp] drain),
	// which internal/config parses for the state machine: the speaker
	// never consults it.
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

// Defaults applied where a field is zero.
const (
	defaultPort        = 179
	defaultHoldTime    = 90 * time.Second
	defaultRestartTime = 120 * time.Second
	maxRestartTime     = 4095 * time.Second // 12 bits in the capability
	maxMD5KeyLen       = 80                 // TCP_MD5SIG_MAXKEYLEN
	maxPrepend         = 16
)

// WithDefaults returns c with every default the speaker applies where a
// field is zero written in (listen port, restart time, each neighbor's
// port and timers): what `vipctl config show` prints. The neighbors are
// copied, never shared with c.
func (c Config) WithDefaults() Config {
	if c.ListenPort == 0 {
		c.ListenPort = defaultPort
	}
	if c.GracefulRestart.RestartTime == 0 {
		c.GracefulRestart.RestartTime = defaultRestartTime
	}
	c.Neighbors = append([]Neighbor(nil), c.Neighbors...)
	for i := range c.Neighbors {
		c.Neighbors[i] = c.Neighbors[i].withDefaults()
	}
	return c
}

// withDefaults fills the neighbor's port, hold time and keepalive.
func (n Neighbor) withDefaults() Neighbor {
	if n.Port == 0 {
		n.Port = defaultPort
	}
	if n.HoldTime == 0 {
		n.HoldTime = defaultHoldTime
	}
	if n.Keepalive == 0 {
		n.Keepalive = n.HoldTime / 3
	}
	return n
}

// Validate checks the section. Errors are fielderr errors with key paths
// relative to the section ("neighbor[1].asn"), joined with errors.Join.
// Defaults (router id, next hops) that the loader fills from the node
// section may still be unset here; New checks what it needs.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fielderr.New(path, format, args...))
	}
	if err := checkASN(c.ASN); err != nil {
		add("asn", "%v", err)
	}
	if c.RouterID.IsValid() && (!c.RouterID.Is4() || c.RouterID.IsUnspecified()) {
		add("router_id", "router id %s must be a non-zero IPv4 address", c.RouterID)
	}
	for i, a := range c.ListenAddresses {
		if !a.IsValid() {
			add(fmt.Sprintf("listen_addresses[%d]", i), "invalid address")
		}
	}
	if c.ListenPort < -1 || c.ListenPort > 65535 {
		add("listen_port", "port %d out of range (-1 = no listen, 0 = 179, 1-65535)", c.ListenPort)
	}
	if c.NextHop4.IsValid() && (!c.NextHop4.Is4() || c.NextHop4.IsUnspecified()) {
		add("next_hop_v4", "next hop %s must be a non-zero IPv4 address", c.NextHop4)
	}
	if c.NextHop6.IsValid() && (!c.NextHop6.Is6() || c.NextHop6.Is4In6() || c.NextHop6.IsUnspecified()) {
		add("next_hop_v6", "next hop %s must be a non-zero IPv6 address", c.NextHop6)
	}
	if rt := c.GracefulRestart.RestartTime; rt != 0 && (rt < time.Second || rt > maxRestartTime || rt%time.Second != 0) {
		add("graceful_restart.restart_time", "restart time %s must be whole seconds between 1s and %s", rt, maxRestartTime)
	}
	errs = append(errs, c.DrainAttrs.validate("drain_attributes")...)

	if len(c.Neighbors) == 0 {
		add("neighbor", "at least one neighbor is required")
	}
	seen := map[netip.Addr]int{}
	ibgp := false
	for i, n := range c.Neighbors {
		p := fmt.Sprintf("neighbor[%d]", i)
		if !n.Address.IsValid() || n.Address.IsUnspecified() {
			add(p+".address", "a neighbor needs an address")
		} else if j, dup := seen[n.Address.Unmap()]; dup {
			add(p+".address", "duplicate neighbor %s (also neighbor[%d])", n.Address, j)
		} else {
			seen[n.Address.Unmap()] = i
		}
		if err := checkASN(n.ASN); err != nil {
			add(p+".asn", "%v", err)
		}
		if n.ASN == c.ASN {
			ibgp = true
		}
		if n.LocalAddress.IsValid() && n.Address.IsValid() && n.LocalAddress.Unmap().Is4() != n.Address.Unmap().Is4() {
			add(p+".local_address", "local address %s and neighbor address %s are of different families", n.LocalAddress, n.Address)
		}
		if len(n.Password) > maxMD5KeyLen {
			add(p+".password", "TCP MD5 password longer than %d bytes", maxMD5KeyLen)
		}
		if n.Password != "" && n.Passive && !n.Address.IsValid() {
			add(p+".password", "a password on a passive neighbor needs the neighbor's address")
		}
		if n.MultihopTTL != 0 && n.ASN == c.ASN && c.ASN != 0 {
			add(p+".ebgp_multihop_ttl", "eBGP multihop set on an iBGP neighbor (asn %d = local asn)", n.ASN)
		}
		hold := n.HoldTime
		if hold != 0 && (hold < 3*time.Second || hold > 65535*time.Second || hold%time.Second != 0) {
			add(p+".hold_time", "hold time %s must be whole seconds, 0 or 3s-65535s", hold)
		}
		if hold == 0 {
			hold = defaultHoldTime
		}
		if ka := n.Keepalive; ka != 0 && (ka%time.Second != 0 || ka >= hold) {
			add(p+".keepalive_interval", "keepalive %s must be whole seconds and less than the hold time %s", ka, hold)
		}
	}

	for _, v := range c.VIPs {
		p := fmt.Sprintf("vip(%s)", v.Prefix)
		if !isHostPrefix(v.Prefix) {
			add(p, "VIP %s is not a /32 or /128 host prefix", v.Prefix)
		} else if v.Prefix.Addr().IsUnspecified() {
			add(p, "VIP %s is the unspecified address", v.Prefix)
		}
		errs = append(errs, v.Attrs.validate(p)...)
		if v.Attrs.LocalPref != nil && !ibgp && len(c.Neighbors) > 0 {
			add(p+".local_pref", "local_pref is only sent to iBGP neighbors, and no neighbor has asn %d", c.ASN)
		}
	}
	return errors.Join(errs...)
}

func (a *RouteAttrs) validate(path string) []error {
	var errs []error
	for i, s := range a.Communities {
		if _, err := parseCommunity(s); err != nil {
			errs = append(errs, fielderr.New(fmt.Sprintf("%s.communities[%d]", path, i), "%v", err))
		}
	}
	for i, s := range a.LargeCommunities {
		if _, err := parseLargeCommunity(s); err != nil {
			errs = append(errs, fielderr.New(fmt.Sprintf("%s.large_communities[%d]", path, i), "%v", err))
		}
	}
	if a.Prepend > maxPrepend {
		errs = append(errs, fielderr.New(path+".as_path_prepend", "%d prepends is more than %d", a.Prepend, maxPrepend))
	}
	return errs
}

// checkASN rejects the ASNs that may not be used for a session: 0, AS_TRANS
// (23456, RFC 6793) and the last 16- and 32-bit ASNs (RFC 7300).
func checkASN(asn uint32) error {
	switch asn {
	case 0:
		return errors.New("ASN is required (0 is invalid)")
	case 23456:
		return errors.New("invalid ASN 23456 (AS_TRANS)")
	case 65535, 4294967295:
		return fmt.Errorf("invalid ASN %d (reserved)", asn)
	}
	return nil
}

func isHostPrefix(p netip.Prefix) bool {
	return p.IsValid() && p.Bits() == p.Addr().BitLen() && !p.Addr().Is4In6()
}

// wellKnownCommunities are the RFC 1997/7999/8326 names accepted in
// communities.
var wellKnownCommunities = map[string]uint32{
	"graceful-shutdown":   0xFFFF0000,
	"blackhole":           0xFFFF029A,
	"no-export":           0xFFFFFF01,
	"no-advertise":        0xFFFFFF02,
	"no-export-subconfed": 0xFFFFFF03,
	"no-peer":             0xFFFFFF04,
}

// parseCommunity parses "ASN:VALUE" (16 bits each) or a well-known name.
func parseCommunity(s string) (uint32, error) {
	if v, ok := wellKnownCommunities[strings.ToLower(s)]; ok {
		return v, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q: want ASN:VALUE or a well-known name", s)
	}
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("community %q: both halves must be 0-65535", s)
	}
	return uint32(h)<<16 | uint32(l), nil
}

// parseLargeCommunity parses "GLOBAL:DATA1:DATA2" (32 bits each, RFC 8092).
func parseLargeCommunity(s string) ([3]uint32, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return [3]uint32{}, fmt.Errorf("large community %q: want GLOBAL:DATA1:DATA2", s)
	}
	var out [3]uint32
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return [3]uint32{}, fmt.Errorf("large community %q: each part must be 0-4294967295", s)
		}
		out[i] = uint32(v)
	}
	return out, nil
}
