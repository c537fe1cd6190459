package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/vipd/vipd/internal/fielderr"
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

// exportPolicyName names generation gen of the export policy.
func exportPolicyName(gen int) string {
	if gen == 0 {
		return policyExport
	}
	return policyExport + "-" + strconv.Itoa(gen)
}

// setNames names generation gen's prefix sets, IPv4 then IPv6.
func setNames(gen int) [2]string {
	if gen == 0 {
		return [2]string{setVIPs4, setVIPs6}
	}
	g := "-" + strconv.Itoa(gen)
	return [2]string{setVIPs4 + g, setVIPs6 + g}
}

// installExportLocked installs the export policy from scratch as a new
// generation: prefix sets of its own holding exactly the configured VIPs,
// and a policy whose statements are bound to them, assigned in one step in
// place of the previous generation, whose policy, statements and sets are
// then deleted. At no moment is a configured VIP rejected: until the
// assignment switches, the previous generation decides, and it is the one
// that let the routes out so far; if anything fails before, the new
// generation is removed and the previous one stays whole. Start installs
// generation 0; Resync a new one each time. Caller holds mu.
//
// GoBGP binds a statement to the set object it finds when the statement is
// added: replacing a set later (AddDefinedSet with Replace) leaves the
// statement on the old object (issue 10, defect 2). So a set in use is
// never replaced: SetVIPs edits the current generation's sets in place
// (editSetsLocked), and a new generation brings new sets.
func (s *Speaker) installExportLocked(ctx context.Context) error {
	sets := prefixSets(s.vips)
	gen := s.exportGen + 1
	name, names := exportPolicyName(gen), setNames(gen)
	accept := &api.Actions{RouteAction: api.RouteAction_ACCEPT}
	var stmts []*api.Statement
	undo := func() {
		_ = s.srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: name}, All: true})
		for _, set := range names {
			_ = s.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{All: true,
				DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: set}})
		}
	}
	for i, set := range names {
		// Replace: a set of this name can only be left over from a failed
		// install, and nothing refers to it.
		if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{Replace: true, DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_PREFIX, Name: set, Prefixes: sets[i],
		}}); err != nil {
			undo()
			return fmt.Errorf("installing prefix set %s: %w", set, err)
		}
		// Both families always get a prefix set and a statement (a set
		// holds a placeholder that is never a VIP), so SetVIPs only ever
		// edits set contents and never has to touch the policy.
		stmts = append(stmts, &api.Statement{
			Name: name + "-" + set,
			Conditions: &api.Conditions{
				RouteType: api.Conditions_ROUTE_TYPE_LOCAL,
				PrefixSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: set},
			},
			Actions: accept,
		})
	}
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: name, Statements: stmts}}); err != nil {
		undo()
		return fmt.Errorf("adding export policy %s: %w", name, err)
	}
	exp := &api.PolicyAssignment{Name: "global", Direction: api.PolicyDirection_EXPORT, DefaultAction: api.RouteAction_REJECT,
		Policies: []*api.Policy{{Name: name}}}
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: exp}); err != nil {
		undo()
		return fmt.Errorf("assigning export policy %s: %w", name, err)
	}
	if s.exportGen >= 0 {
		old := exportPolicyName(s.exportGen)
		if err := s.srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: old}, All: true}); err != nil {
			s.log.Warn("deleting the previous export policy", "policy", old, "reason", err)
		}
		for _, set := range setNames(s.exportGen) {
			if err := s.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{All: true,
				DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: set}}); err != nil {
				s.log.Warn("deleting the previous export prefix set", "set", set, "reason", err)
			}
		}
	}
	s.exportGen = gen
	return nil
}

// editSetsLocked adds prefixes to (remove false) or removes them from the
// export prefix sets in place: the objects the export statements are bound
// to change, so the policy follows at once. Caller holds mu.
func (s *Speaker) editSetsLocked(ctx context.Context, prefixes []netip.Prefix, remove bool) error {
	var byFam [2][]*api.Prefix
	for _, p := range prefixes {
		i, bits := 0, uint32(32)
		if p.Addr().Is6() {
			i, bits = 1, 128
		}
		byFam[i] = append(byFam[i], &api.Prefix{IpPrefix: p.String(), MaskLengthMin: bits, MaskLengthMax: bits})
	}
	for i, name := range setNames(s.exportGen) {
		if len(byFam[i]) == 0 {
			continue
		}
		set := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name, Prefixes: byFam[i]}
		if remove {
			if err := s.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: set}); err != nil {
				return fmt.Errorf("removing %d prefixes from set %s: %w", len(byFam[i]), name, err)
			}
			continue
		}
		// Replace false appends to the existing set object.
		if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set}); err != nil {
			return fmt.Errorf("adding %d prefixes to set %s: %w", len(byFam[i]), name, err)
		}
	}
	return nil
}

// SetVIPs replaces the configured VIPs on a config reload (see
// routing.Advertiser): from now on only these may be announced (the export
// policy's prefix sets follow), with these attributes (RouteAttrs; nil for
// none). Routes announced now are re-announced when their attributes
// changed; a route whose VIP is no longer listed is withdrawn at once.
//
// Added VIPs enter the export prefix sets before anything else happens and
// removed ones leave them after their routes were withdrawn; the sets are
// edited in place, so the export policy sees the change at once and no
// route that stays is withdrawn or re-sent.
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
		next[v.Prefix] = v.Attrs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return routing.ErrClosed
	}
	for p := range next {
		if p.Addr().Is4() && !s.spec.nextHop4.IsValid() {
			return fmt.Errorf("setting bgp VIPs: IPv4 VIP %s needs next_hop_v4", p)
		}
		if p.Addr().Is6() && !s.spec.nextHop6.IsValid() {
			return fmt.Errorf("setting bgp VIPs: IPv6 VIP %s needs next_hop_v6", p)
		}
	}
	if !s.started {
		s.vips = next
		return nil
	}
	var added, removed []netip.Prefix
	for p := range next {
		if _, ok := s.vips[p]; !ok {
			added = append(added, p)
		}
	}
	for p := range s.vips {
		if _, ok := next[p]; !ok {
			removed = append(removed, p)
		}
	}
	if err := s.editSetsLocked(ctx, added, false); err != nil {
		return fmt.Errorf("setting bgp VIPs: %w", err)
	}
	s.vips = next
	var keep []routing.Route
	for _, r := range s.routesLocked() {
		if _, ok := next[r.Prefix]; ok {
			keep = append(keep, r)
		}
	}
	_, rerr := s.setRoutesLocked(ctx, keep)
	// A removed VIP whose withdraw failed stays in the sets: its route is
	// still out there, and the next SetRoutes or Resync withdraws it.
	removed = slices.DeleteFunc(removed, func(p netip.Prefix) bool { _, on := s.announced[p]; return on })
	serr := s.editSetsLocked(ctx, removed, true)
	if rerr != nil {
		rerr = fmt.Errorf("re-announcing with the new attributes: %w", rerr)
	}
	return errors.Join(rerr, serr)
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

// RouteSettings are the route attributes a speaker applies to every VIP:
// the next hop of each family and the drain attributes (Config's NextHop4,
// NextHop6 and DrainAttrs).
type RouteSettings struct {
	NextHop4, NextHop6 netip.Addr
	DrainAttrs         RouteAttrs
}

// SetRouteSettings changes the next hops and drain attributes at run time,
// as a fresh start with them would announce: every announced route whose
// next hop or (draining) attributes change is announced again with the new
// ones, which replaces the path at the peers without a withdraw; the
// others are not touched. A family with a configured VIP must keep a next
// hop. internal/config treats these keys as needing a restart today; this
// is what a reload would call if it did not.
func (s *Speaker) SetRouteSettings(ctx context.Context, rs RouteSettings) error {
	probe := Config{NextHop4: rs.NextHop4, NextHop6: rs.NextHop6}
	var errs []error
	for _, e := range fielderr.All(probe.Validate()) {
		var fe *fielderr.Error
		if errors.As(e, &fe) && (fe.Path == "next_hop_v4" || fe.Path == "next_hop_v6") {
			errs = append(errs, e)
		}
	}
	errs = append(errs, rs.DrainAttrs.validate("drain_attributes")...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("setting bgp route settings: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return routing.ErrClosed
	}
	for p := range s.vips {
		if p.Addr().Is4() && !rs.NextHop4.IsValid() {
			return fmt.Errorf("setting bgp route settings: IPv4 VIP %s needs next_hop_v4", p)
		}
		if p.Addr().Is6() && !rs.NextHop6.IsValid() {
			return fmt.Errorf("setting bgp route settings: IPv6 VIP %s needs next_hop_v6", p)
		}
	}
	moved4, moved6 := rs.NextHop4 != s.spec.nextHop4, rs.NextHop6 != s.spec.nextHop6
	s.spec.nextHop4, s.spec.nextHop6 = rs.NextHop4, rs.NextHop6
	s.cfg.NextHop4, s.cfg.NextHop6, s.cfg.DrainAttrs = rs.NextHop4, rs.NextHop6, rs.DrainAttrs
	if !s.started {
		return nil
	}
	for _, r := range s.routesLocked() {
		attrs := s.vips[r.Prefix]
		if r.Draining {
			attrs = withDrain(attrs, rs.DrainAttrs)
		}
		if r.Prefix.Addr().Is4() && moved4 || r.Prefix.Addr().Is6() && moved6 {
			// Same attributes, new next hop: make announceLocked send it
			// (and retry it later if this fails).
			cur := s.announced[r.Prefix]
			cur.stale = true
			s.announced[r.Prefix] = cur
		}
		if err := s.announceLocked(ctx, r.Prefix, attrs, r.Draining); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("re-announcing with the new route settings: %w", err)
	}
	return nil
}
