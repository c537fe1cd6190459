package config

import (
	"fmt"
	"net/netip"

	"github.com/vipd/vipd/dataplane"
)

// dataplaneTrust parses the trust boundary's keys of [dataplane]:
// allowed_sources (prefixes, like client_prefixes) and max_hops (default
// 1).
func (p *parser) dataplaneTrust(r *rawDataplane, d *Dataplane) {
	d.MaxHops = 1
	for i, s := range r.AllowedSources {
		path := fmt.Sprintf("dataplane.allowed_sources[%d]", i)
		pfx, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			p.errorf(path, "%q is not a prefix (like \"192.0.2.0/24\")", s)
		case pfx != pfx.Masked():
			p.errorf(path, "%q has host bits set (did you mean %s?)", s, pfx.Masked())
		case i == dataplane.MaxDirectorPrefixes:
			p.errorf(path, "%d prefixes: %w (MaxDirectorPrefixes = %d)", len(r.AllowedSources), dataplane.ErrOverLimit, dataplane.MaxDirectorPrefixes)
		case i > dataplane.MaxDirectorPrefixes:
		default:
			d.AllowedSources = append(d.AllowedSources, pfx)
		}
	}
	if r.MaxHops != nil {
		if *r.MaxHops < 1 || *r.MaxHops > dataplane.MaxHopsAccepted {
			p.errorf("dataplane.max_hops", "%d is out of range 1-%d (MaxHopsAccepted)", *r.MaxHops, dataplane.MaxHopsAccepted)
		} else {
			d.MaxHops = int(*r.MaxHops)
		}
	}
}

// limits rejects a configuration the dataplane's maps cannot hold
// (dataplane's Max constants, the sizes of the XDP program's maps), naming
// the limit and the first item over it, so `vipctl config check` and vipd
// at start refuse it rather than a Program failing for the last VIPs.
func (p *parser) limits(cfg *Config) {
	keys := 0
	keysOver := false
	for i, v := range cfg.VIPs {
		path := fmt.Sprintf("vip[%d]", p.vipIdx[i])
		if i == dataplane.MaxVIPs {
			p.errorf(path, "%d VIPs: %w (MaxVIPs = %d); this is VIP %d", len(cfg.VIPs), dataplane.ErrOverLimit, dataplane.MaxVIPs, i+1)
		}
		keys += dataplane.VIPKeys(v.Services)
		if keys > dataplane.MaxVIPKeys && !keysOver {
			keysOver = true
			p.errorf(path+".services", "%d or more VIP map entries (a VIP's services plus one per protocol): %w (MaxVIPKeys = %d)", keys, dataplane.ErrOverLimit, dataplane.MaxVIPKeys)
		}
	}
	// Every member's underlay address is a backend slot and a member entry
	// of the trust boundary.
	addrs := map[netip.Addr]bool{}
	for _, m := range cfg.Cluster.Members {
		for _, a := range []netip.Addr{m.UnderlayV4, m.UnderlayV6} {
			if !a.IsValid() || addrs[a] {
				continue
			}
			addrs[a] = true
			if len(addrs) == min(dataplane.MaxBackends, dataplane.MaxMembers)+1 {
				p.errorf("cluster.member", "more than %d underlay addresses: %w (MaxBackends = %d, MaxMembers = %d)",
					len(addrs)-1, dataplane.ErrOverLimit, dataplane.MaxBackends, dataplane.MaxMembers)
			}
		}
	}
}
