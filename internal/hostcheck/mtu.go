package hostcheck

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bird"
)

// nativeXDPMaxMTU is the largest MTU at which a single-buffer XDP program
// attaches in native mode, per driver, on 4 KiB pages. Derived from each
// driver's XDP setup path (Linux 5.x/6.x); the exact value depends on the
// driver's buffer layout, so treat it as "about":
//   - ixgbe: ixgbe_xdp_setup rejects mtu + ETH_HLEN + ETH_FCS_LEN + VLAN_HLEN
//     (22) above the 3 KiB Rx buffer: 3072 - 22.
//   - i40e: i40e_xdp_setup rejects mtu + I40E_PACKET_HDR_PAD (26) above
//     I40E_RXBUFFER_3072: 3072 - 26.
//   - virtio_net: virtnet_xdp_set: PAGE_SIZE - SKB_DATA_ALIGN(headroom 256 +
//     skb_shared_info 320) - ETH_HLEN = 4096 - 576 - 14.
//   - veth: veth_xdp_set: SKB_WITH_OVERHEAD(PAGE_SIZE - 256) - ETH_HLEN,
//     the same 3506 (a frags-aware program may go higher on new kernels).
var nativeXDPMaxMTU = map[string]int{
	"ixgbe":      3050,
	"i40e":       3046,
	"virtio_net": 3506,
	"veth":       3506,
}

// checkXDPMTU fails an interface MTU above the driver's native-XDP limit
// when native XDP may be used: the attach would be refused (docs/field-notes.md, note 5:
// such NICs cannot follow a 9000-byte switch). SafeAttachMode then picks
// generic XDP for attach mode auto.
func checkXDPMTU(_ context.Context, h Host, s Spec) Result {
	r := Result{ID: IDXDPMTU, Name: "MTU vs native XDP limit"}
	if s.Interface == "" {
		r.Status, r.Finding = Skip, "no interface configured"
		return r
	}
	mtu, err := h.MTU(s.Interface)
	if err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("reading mtu of %s: %v", s.Interface, err)
		return r
	}
	di, err := h.DriverInfo(s.Interface)
	if err != nil {
		r.Status, r.Finding = Pass, fmt.Sprintf("%s: mtu %d; no driver info, native XDP limit unknown", s.Interface, mtu)
		return r
	}
	limit, known := nativeXDPMaxMTU[di.Driver]
	switch {
	case !known:
		r.Status, r.Finding = Pass, fmt.Sprintf("%s: mtu %d; native XDP limit of %s unknown", s.Interface, mtu, di.Driver)
	case s.AttachMode == dataplane.AttachGeneric:
		r.Status, r.Finding = Skip, fmt.Sprintf("%s: mtu %d; attach_mode generic (native XDP limit of %s about %d)", s.Interface, mtu, di.Driver, limit)
	case mtu > limit:
		r.Status = Fail
		r.Finding = fmt.Sprintf("%s: mtu %d > about %d, the native XDP limit of %s: native XDP will not attach (generic XDP will)",
			s.Interface, mtu, limit, di.Driver)
		r.Fix = fmt.Sprintf("ip link set %s mtu %d", s.Interface, limit)
	default:
		r.Status, r.Finding = Pass, fmt.Sprintf("%s: mtu %d <= about %d, the native XDP limit of %s", s.Interface, mtu, limit, di.Driver)
	}
	return r
}

// checkMTU compares the XDP interface's MTU with the switch's, knowing the
// driver's native-XDP limit (docs/field-notes.md, note 5). Since BIRD 2.0.7 an OSPF MTU
// mismatch is an error: the adjacency stays in ExStart unless BIRD is
// patched with `ignoremtu` and the config sets it.
func checkMTU(ctx context.Context, h Host, s Spec) Result {
	r := Result{ID: IDMTU, Name: "MTU vs switch and native XDP"}
	if s.Interface == "" {
		r.Status, r.Finding = Skip, "no interface configured"
		return r
	}
	mtu, err := h.MTU(s.Interface)
	if err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("reading mtu of %s: %v", s.Interface, err)
		return r
	}
	limit := 0
	driver := "unknown driver"
	if di, err := h.DriverInfo(s.Interface); err == nil {
		driver = di.Driver
		limit = nativeXDPMaxMTU[di.Driver]
	}
	native := s.AttachMode != dataplane.AttachGeneric
	var parts, fixes []string
	r.Status = Pass
	worse := func(st Status) { r.Status = max(r.Status, st) }
	parts = append(parts, fmt.Sprintf("%s: mtu %d", s.Interface, mtu))
	if limit > 0 {
		// Said here because it decides whether raising the MTU to the
		// switch's is a fix; checkXDPMTU fails an MTU above it.
		parts = append(parts, fmt.Sprintf("native XDP limit of %s about %d", driver, limit))
	}
	if s.SwitchMTU == 0 {
		parts = append(parts, "no switch_mtu configured")
	} else {
		parts = append(parts, fmt.Sprintf("switch mtu %d", s.SwitchMTU))
	}
	if s.SwitchMTU != 0 && s.SwitchMTU != mtu {
		// Raising the MTU to the switch's is the fix unless native XDP
		// cannot run at that MTU.
		canRaise := !native || limit == 0 || s.SwitchMTU <= limit
		raise := fmt.Sprintf("ip link set %s mtu %d", s.Interface, s.SwitchMTU)
		if s.RoutingMode == routing.ModeBirdOSPF {
			supported, asked, perr := probeIgnoreMTU(ctx, s)
			birdSays := asked + " supports ignoremtu"
			switch {
			case perr != nil:
				birdSays = fmt.Sprintf("cannot tell whether BIRD supports ignoremtu: %v", perr)
			case !supported:
				birdSays = asked + " does not support ignoremtu (stock BIRD; a patched one is required)"
			}
			old := ""
			if !s.IgnoreMTU {
				old = oldBird(ctx, h, s)
			}
			switch {
			case s.IgnoreMTU && supported:
				parts = append(parts, "OSPF mismatch ignored (ignore_mtu, "+birdSays+")")
			case s.IgnoreMTU:
				worse(Fail)
				parts = append(parts, "ignore_mtu is set but "+birdSays)
				fixes = append(fixes, "install the patched BIRD (routing/bird/patch) and set routing.bird.bird to it")
			case old != "":
				// Before 2.0.7 BIRD only logs the mismatch; the adjacency
				// forms, and breaks on the next BIRD upgrade.
				worse(Warn)
				parts = append(parts, fmt.Sprintf("running BIRD %s only warns on OSPF MTU mismatch (an error since 2.0.7, the adjacency breaks on upgrade); %s",
					old, birdSays))
				if canRaise {
					fixes = append(fixes, raise)
				} else {
					fixes = append(fixes, "set ignore_mtu = true in [[routing.bird.ospf]] with a patched BIRD")
				}
			default:
				worse(Fail)
				parts = append(parts, fmt.Sprintf("OSPF will refuse adjacency (MTU mismatch, remote %d, local %d); %s", s.SwitchMTU, mtu, birdSays))
				if canRaise {
					fixes = append(fixes, raise)
				} else {
					fixes = append(fixes, "set ignore_mtu = true in [[routing.bird.ospf]] with a patched BIRD")
				}
			}
		} else {
			worse(Warn)
			if mtu < s.SwitchMTU {
				parts = append(parts, fmt.Sprintf("frames above %d from the switch are dropped here", mtu))
			} else {
				parts = append(parts, fmt.Sprintf("frames above %d sent to the switch are dropped there", s.SwitchMTU))
			}
			if canRaise {
				fixes = append(fixes, raise)
			} else {
				fixes = append(fixes, fmt.Sprintf("lower the switch port MTU to %d", mtu))
			}
		}
	}
	r.Finding = strings.Join(parts, "; ")
	r.Fix = strings.Join(fixes, " && ")
	return r
}

// probeIgnoreMTU asks whether the BIRD this node runs supports ignoremtu:
// the running daemon when one answers (a stock BIRD still running after the
// patched one was installed says no), else the installed binary. asked
// names what answered.
func probeIgnoreMTU(ctx context.Context, s Spec) (supported bool, asked string, err error) {
	bin := s.BirdBinary
	if bin == "" {
		bin = "bird"
	}
	if s.ProbeIgnoreMTU != nil {
		ok, err := s.ProbeIgnoreMTU(ctx, bin)
		return ok, "installed BIRD", err
	}
	if s.Bird != nil {
		r, err := bird.ProbeIgnoreMTUFor(ctx, *s.Bird)
		if err != nil {
			return false, "", err
		}
		if r.Running {
			return r.Supported, "running BIRD", nil
		}
		return r.Supported, "installed BIRD (none runs)", nil
	}
	ok, err := bird.ProbeIgnoreMTU(ctx, bin)
	return ok, "installed BIRD", err
}

// oldBird returns the version of the running BIRD (from its control socket)
// when it is older than 2.0.7, the release that made an OSPF MTU mismatch an
// error; "" when it is newer or unknown (then the mismatch counts as fatal).
func oldBird(ctx context.Context, h Host, s Spec) string {
	sock := s.BirdSocket
	if sock == "" {
		sock = defaultBirdSocket
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	v, err := birdVersion(ctx, h, sock)
	if err != nil {
		return ""
	}
	var n [3]int
	for i, f := range strings.SplitN(v, ".", 3) {
		d, _ := strconv.Atoi(strings.TrimFunc(f, func(r rune) bool { return r < '0' || r > '9' }))
		n[i] = d
	}
	if n[0] < 2 || (n[0] == 2 && n[1] == 0 && n[2] < 7) {
		return v
	}
	return ""
}
