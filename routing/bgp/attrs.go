package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// withDrain returns the attributes of a draining route: base with the drain
// attributes on top. Communities are added, prepends add up, MED and local
// preference are replaced when the drain attributes set them.
func withDrain(base, drain RouteAttrs) RouteAttrs {
	out := RouteAttrs{
		Communities:      append(slices.Clone(base.Communities), drain.Communities...),
		LargeCommunities: append(slices.Clone(base.LargeCommunities), drain.LargeCommunities...),
		MED:              base.MED,
		LocalPref:        base.LocalPref,
		Prepend:          base.Prepend + drain.Prepend,
	}
	if drain.MED != nil {
		out.MED = drain.MED
	}
	if drain.LocalPref != nil {
		out.LocalPref = drain.LocalPref
	}
	return out
}

// equalAttrs reports whether a and b announce the same path.
func equalAttrs(a, b RouteAttrs) bool {
	eqp := func(x, y *uint32) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return slices.Equal(a.Communities, b.Communities) &&
		slices.Equal(a.LargeCommunities, b.LargeCommunities) &&
		eqp(a.MED, b.MED) && eqp(a.LocalPref, b.LocalPref) && a.Prepend == b.Prepend
}

// pathSpec builds GoBGP paths for VIP prefixes.
type pathSpec struct {
	asn      uint32
	nextHop4 netip.Addr
	nextHop6 netip.Addr
}

// nlri returns the NLRI and family of a host prefix.
func nlri(p netip.Prefix) (bgp.AddrPrefixInterface, *api.Family) {
	if p.Addr().Is4() {
		return bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String()), familyV4
	}
	return bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String()), familyV6
}

// announce builds the path announcing p with attrs. Attributes were
// validated with the config, so parse errors here are bugs, still reported.
func (s pathSpec) announce(p netip.Prefix, attrs RouteAttrs) (*api.Path, error) {
	n, fam := nlri(p)
	pattrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if fam == familyV4 {
		if !s.nextHop4.IsValid() {
			return nil, fmt.Errorf("no IPv4 next hop configured for %s", p)
		}
		pattrs = append(pattrs, bgp.NewPathAttributeNextHop(s.nextHop4.String()))
	} else {
		if !s.nextHop6.IsValid() {
			return nil, fmt.Errorf("no IPv6 next hop configured for %s", p)
		}
		pattrs = append(pattrs, bgp.NewPathAttributeMpReachNLRI(s.nextHop6.String(), []bgp.AddrPrefixInterface{n}))
	}
	if attrs.Prepend > 0 {
		// GoBGP adds our ASN once more towards eBGP peers: the peer sees
		// 1+Prepend copies, as a router's "prepend N" would give.
		as := make([]uint32, attrs.Prepend)
		for i := range as {
			as[i] = s.asn
		}
		pattrs = append(pattrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
			bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, as),
		}))
	} else {
		pattrs = append(pattrs, bgp.NewPathAttributeAsPath(nil))
	}
	if attrs.MED != nil {
		pattrs = append(pattrs, bgp.NewPathAttributeMultiExitDisc(*attrs.MED))
	}
	if attrs.LocalPref != nil {
		pattrs = append(pattrs, bgp.NewPathAttributeLocalPref(*attrs.LocalPref))
	}
	if len(attrs.Communities) > 0 {
		cs := make([]uint32, 0, len(attrs.Communities))
		for _, c := range attrs.Communities {
			v, err := parseCommunity(c)
			if err != nil {
				return nil, err
			}
			cs = append(cs, v)
		}
		pattrs = append(pattrs, bgp.NewPathAttributeCommunities(cs))
	}
	if len(attrs.LargeCommunities) > 0 {
		ls := make([]*bgp.LargeCommunity, 0, len(attrs.LargeCommunities))
		for _, c := range attrs.LargeCommunities {
			v, err := parseLargeCommunity(c)
			if err != nil {
				return nil, err
			}
			ls = append(ls, bgp.NewLargeCommunity(v[0], v[1], v[2]))
		}
		pattrs = append(pattrs, bgp.NewPathAttributeLargeCommunities(ls))
	}
	path, err := apiutil.NewPath(n, false, pattrs, time.Now())
	if err != nil {
		return nil, fmt.Errorf("building path for %s: %w", p, err)
	}
	path.Family = fam
	return path, nil
}

// withdraw builds the path withdrawing p.
func (s pathSpec) withdraw(p netip.Prefix) (*api.Path, error) {
	n, fam := nlri(p)
	var pattrs []bgp.PathAttributeInterface
	if fam == familyV6 {
		pattrs = append(pattrs, bgp.NewPathAttributeMpReachNLRI("::", []bgp.AddrPrefixInterface{n}))
	} else {
		pattrs = append(pattrs, bgp.NewPathAttributeNextHop("0.0.0.0"))
	}
	path, err := apiutil.NewPath(n, true, pattrs, time.Now())
	if err != nil {
		return nil, fmt.Errorf("building withdraw for %s: %w", p, err)
	}
	path.Family = fam
	return path, nil
}
