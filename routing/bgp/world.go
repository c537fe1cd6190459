package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/vipd/vipd/routing"
)

// exportSig is what tells one exported path's attributes apart: the
// attributes a VIP's normal and drain announcements may differ in, as the
// peer receives them.
type exportSig struct {
	med    string // "" when absent
	comms  string
	large  string
	asHops int // AS path length
}

func (g exportSig) String() string {
	var parts []string
	if g.med != "" {
		parts = append(parts, "med "+g.med)
	}
	if g.comms != "" {
		parts = append(parts, "communities "+g.comms)
	}
	if g.large != "" {
		parts = append(parts, "large communities "+g.large)
	}
	parts = append(parts, "as path length "+strconv.Itoa(g.asHops))
	return strings.Join(parts, ", ")
}

// attrsSig is the signature of a path announced with attrs as a peer sees
// it: GoBGP adds our ASN once more towards an eBGP peer.
func attrsSig(attrs RouteAttrs, ebgp bool) exportSig {
	g := exportSig{asHops: int(attrs.Prepend)}
	if ebgp {
		g.asHops++
	}
	if attrs.MED != nil {
		g.med = strconv.FormatUint(uint64(*attrs.MED), 10)
	}
	var cs []string
	for _, c := range attrs.Communities {
		v, err := parseCommunity(c)
		if err != nil {
			continue // validated with the config
		}
		cs = append(cs, strconv.FormatUint(uint64(v>>16), 10)+":"+strconv.FormatUint(uint64(v&0xffff), 10))
	}
	g.comms = strings.Join(cs, " ")
	var ls []string
	for _, c := range attrs.LargeCommunities {
		v, err := parseLargeCommunity(c)
		if err != nil {
			continue
		}
		ls = append(ls, fmt.Sprintf("%d:%d:%d", v[0], v[1], v[2]))
	}
	g.large = strings.Join(ls, " ")
	return g
}

// pathSig reads the signature of a path listed with EnableOnlyBinary.
func pathSig(p *api.Path) (exportSig, error) {
	var g exportSig
	for _, raw := range p.PattrsBinary {
		a, err := bgp.GetPathAttribute(raw)
		if err != nil {
			return g, err
		}
		switch a.(type) {
		case *bgp.PathAttributeMultiExitDisc, *bgp.PathAttributeCommunities,
			*bgp.PathAttributeLargeCommunities, *bgp.PathAttributeAsPath:
		default:
			continue // not part of the signature: skip the decoding
		}
		if err := a.DecodeFromBytes(raw); err != nil {
			return g, err
		}
		switch a := a.(type) {
		case *bgp.PathAttributeMultiExitDisc:
			g.med = strconv.FormatUint(uint64(a.Value), 10)
		case *bgp.PathAttributeCommunities:
			cs := make([]string, 0, len(a.Value))
			for _, v := range a.Value {
				cs = append(cs, strconv.FormatUint(uint64(v>>16), 10)+":"+strconv.FormatUint(uint64(v&0xffff), 10))
			}
			g.comms = strings.Join(cs, " ")
		case *bgp.PathAttributeLargeCommunities:
			ls := make([]string, 0, len(a.Values))
			for _, v := range a.Values {
				ls = append(ls, fmt.Sprintf("%d:%d:%d", v.ASN, v.LocalData1, v.LocalData2))
			}
			g.large = strings.Join(ls, " ")
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				g.asHops += seg.ASLen()
			}
		}
	}
	return g, nil
}

// classify says whether an exported path carries vip's normal or drain
// attributes, and why neither when it carries other ones (a reload that
// did not reach the peer, a path installed behind the speaker's back).
func classify(got exportSig, base, drain RouteAttrs, ebgp bool) (draining bool, mismatch string) {
	normal := attrsSig(base, ebgp)
	if got == normal {
		return false, ""
	}
	d := attrsSig(withDrain(base, drain), ebgp)
	if got == d {
		return true, ""
	}
	return false, fmt.Sprintf("exported with %s; want %s (normal) or %s (draining)", got, normal, d)
}

// Exported implements routing.Advertiser: each established neighbor's
// adj-RIB-out after the export policy, both families, as GoBGP computes it
// from its RIB and the policy in force (GoBGP keeps no copy of what it
// sent: this is what it would send the peer now, and what a soft reset
// sends). Draining is true when the exported attributes are the VIP's
// drain attributes; Mismatch says when they are neither its normal nor its
// drain ones. SessionsUp counts the established neighbors.
func (s *Speaker) Exported(ctx context.Context) (routing.Exported, error) {
	s.mu.Lock()
	if err := s.runningLocked(); err != nil {
		s.mu.Unlock()
		return routing.Exported{}, err
	}
	vips, drain := s.vips, s.cfg.DrainAttrs // SetVIPs replaces the map, never edits it
	s.mu.Unlock()

	type peerInfo struct {
		name string
		addr netip.Addr
		ebgp bool
	}
	var up []peerInfo
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Conf == nil || p.State == nil || p.State.SessionState != api.PeerState_ESTABLISHED {
			return
		}
		addr, err := netip.ParseAddr(p.Conf.NeighborAddress)
		if err != nil {
			return
		}
		up = append(up, peerInfo{peerName(addr, p.Conf.PeerAsn), addr, p.Conf.PeerAsn != s.cfg.ASN})
	})
	if err != nil {
		return routing.Exported{}, fmt.Errorf("listing peers: %w", err)
	}
	slices.SortFunc(up, func(a, b peerInfo) int { return strings.Compare(a.name, b.name) })
	// Every neighbor is configured with both families.
	ex := routing.Exported{At: time.Now(), SessionsUp: len(up), SessionsUp4: len(up), SessionsUp6: len(up),
		Routes: map[netip.Prefix]routing.ExportedRoute{}}
	for _, pi := range up {
		for _, fam := range []*api.Family{familyV4, familyV6} {
			var perr error
			err := s.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_ADJ_OUT, Name: pi.addr.String(),
				Family: fam, EnableOnlyBinary: true}, func(d *api.Destination) {
				if perr != nil || len(d.Paths) == 0 {
					return
				}
				p, err := netip.ParsePrefix(d.Prefix)
				if err != nil {
					perr = fmt.Errorf("parsing exported prefix %q: %w", d.Prefix, err)
					return
				}
				r := ex.Routes[p]
				r.Peers = append(r.Peers, pi.name)
				g, err := pathSig(d.Paths[0])
				if err != nil {
					perr = fmt.Errorf("decoding the path exported for %s: %w", p, err)
					return
				}
				base, ok := vips[p]
				var draining bool
				var mismatch string
				if ok {
					draining, mismatch = classify(g, base, drain, pi.ebgp)
				} else {
					mismatch = "exported, but not a configured VIP"
				}
				if len(r.Peers) == 1 {
					r.Draining, r.Mismatch = draining, mismatch
				} else if r.Mismatch == "" && mismatch != "" {
					r.Mismatch = pi.name + ": " + mismatch
				} else if r.Mismatch == "" && draining != r.Draining {
					r.Mismatch = fmt.Sprintf("%s: draining=%v, %s: draining=%v", r.Peers[0], r.Draining, pi.name, draining)
				}
				ex.Routes[p] = r
			})
			if err == nil {
				err = perr
			}
			if err != nil {
				return routing.Exported{}, fmt.Errorf("listing routes exported to %s: %w", pi.addr, err)
			}
		}
	}
	return ex, nil
}

// peerName is how Peers and Exported name a neighbor.
func peerName(addr netip.Addr, asn uint32) string {
	return addr.String() + " AS" + strconv.FormatUint(uint64(asn), 10)
}

// Resync implements routing.Advertiser: it installs the export prefix sets
// and a new generation of the export policy from scratch (see
// installExportLocked), puts back every announced path the global RIB lost
// or holds with other attributes, deletes every path it holds that is not
// announced, and soft-resets every established neighbor outbound, which
// sends its whole adj-RIB-out again. Routes that were right are only sent
// again, never withdrawn: nothing flaps.
func (s *Speaker) Resync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.runningLocked(); err != nil {
		return err
	}
	if err := s.installExportLocked(ctx); err != nil {
		return fmt.Errorf("resyncing the export policy: %w", err)
	}
	inRIB := map[netip.Prefix]exportSig{}
	var stray []*api.Path
	for _, fam := range []*api.Family{familyV4, familyV6} {
		var perr error
		err := s.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam, EnableOnlyBinary: true},
			func(d *api.Destination) {
				p, err := netip.ParsePrefix(d.Prefix)
				if err != nil || len(d.Paths) == 0 {
					return
				}
				if _, on := s.announced[p]; !on {
					w, err := s.spec.withdraw(p)
					if err != nil {
						perr = err
						return
					}
					stray = append(stray, w)
					return
				}
				if g, err := pathSig(d.Paths[0]); err == nil {
					inRIB[p] = g
				}
			})
		if err == nil {
			err = perr
		}
		if err != nil {
			return fmt.Errorf("resyncing: listing the RIB: %w", err)
		}
	}
	readded := 0
	for p, a := range s.announced {
		if g, ok := inRIB[p]; ok && !a.stale && g == attrsSig(a.attrs, false) {
			continue
		}
		path, err := s.spec.announce(p, a.attrs)
		if err != nil {
			return fmt.Errorf("resyncing %s: %w", p, err)
		}
		if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
			return fmt.Errorf("resyncing: announcing %s: %w", p, err)
		}
		s.announced[p] = announcedRoute{attrs: a.attrs, draining: a.draining}
		readded++
	}
	for _, w := range stray {
		if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: w.Family, Path: w}); err != nil {
			return fmt.Errorf("resyncing: withdrawing a stray path: %w", err)
		}
	}
	if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Soft: true, Direction: api.ResetPeerRequest_OUT}); err != nil {
		return fmt.Errorf("resyncing: soft reset out: %w", err)
	}
	s.log.Info("resynced the routes", "routes", len(s.announced), "readded", readded, "stray", len(stray),
		"policy", exportPolicyName(s.exportGen))
	return nil
}
