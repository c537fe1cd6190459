package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/vipd/vipd/routing"
)

// placeholders keep each family's export prefix set non-empty: the
// unspecified host routes are never VIPs (Validate refuses them).
var placeholders = [2]netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/32"),
	netip.MustParsePrefix("::/128"),
}

// prefixSets are the export policy's prefix sets, IPv4 then IPv6: exactly
// the host routes of vips, plus a placeholder each.
func prefixSets(vips map[netip.Prefix]RouteAttrs) [2][]*api.Prefix {
	var sets [2][]*api.Prefix
	add := func(p netip.Prefix) {
		i, bits := 0, uint32(32)
		if p.Addr().Is6() {
			i, bits = 1, 128
		}
		sets[i] = append(sets[i], &api.Prefix{IpPrefix: p.String(), MaskLengthMin: bits, MaskLengthMax: bits})
	}
	for _, p := range placeholders {
		add(p)
	}
	for p := range vips {
		add(p)
	}
	return sets
}

// SetVIPs replaces the configured VIPs on a config reload (see
// routing.Advertiser): from now on only these may be announced (the export
// policy's prefix sets follow), with these attributes (RouteAttrs; nil for
// none). Routes announced now are re-announced when their attributes
// changed; a route whose VIP is no longer listed is withdrawn at once.
func (s *Speaker) SetVIPs(ctx context.Context, vips []routing.VIP) error {
	next := make(map[netip.Prefix]RouteAttrs, len(vips))
	for _, rv := range vips {
		v, err := vipRoute(rv)
		if err != nil {
			return fmt.Errorf("setting bgp VIPs: %w", err)
		}
		if err := errors.Join(v.Attrs.validate(fmt.Sprintf("vip(%s)", v.Prefix))...); err != nil {
			return fmt.Errorf("setting bgp VIPs: %w", err)
		}
		if v.Prefix.Addr().Is4() && !s.cfg.NextHop4.IsValid() {
			return fmt.Errorf("setting bgp VIPs: IPv4 VIP %s needs next_hop_v4", v.Prefix)
		}
		if v.Prefix.Addr().Is6() && !s.cfg.NextHop6.IsValid() {
			return fmt.Errorf("setting bgp VIPs: IPv6 VIP %s needs next_hop_v6", v.Prefix)
		}
		next[v.Prefix] = v.Attrs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return routing.ErrClosed
	}
	if !s.started {
		s.vips = next
		return nil
	}
	sets := prefixSets(next)
	for i, name := range []string{setVIPs4, setVIPs6} {
		if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{Replace: true, DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_PREFIX, Name: name, Prefixes: sets[i],
		}}); err != nil {
			return fmt.Errorf("replacing prefix set %s: %w", name, err)
		}
	}
	s.vips = next
	var keep []routing.Route
	for _, r := range s.routesLocked() {
		if _, ok := next[r.Prefix]; ok {
			keep = append(keep, r)
		}
	}
	if _, err := s.setRoutesLocked(ctx, keep); err != nil {
		return fmt.Errorf("re-announcing with the new attributes: %w", err)
	}
	return nil
}

// vipRoute converts a routing.VIP, whose attributes must be RouteAttrs (or
// nil for none).
func vipRoute(v routing.VIP) (VIPRoute, error) {
	switch a := v.Attrs.(type) {
	case nil:
		return VIPRoute{Prefix: v.Prefix}, nil
	case RouteAttrs:
		return VIPRoute{Prefix: v.Prefix, Attrs: a}, nil
	case *RouteAttrs:
		if a == nil {
			return VIPRoute{Prefix: v.Prefix}, nil
		}
		return VIPRoute{Prefix: v.Prefix, Attrs: *a}, nil
	}
	return VIPRoute{}, fmt.Errorf("VIP %s: %T: %w", v.Prefix, v.Attrs, routing.ErrAttrs)
}
