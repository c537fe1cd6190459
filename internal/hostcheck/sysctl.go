package hostcheck

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// readInt reads a file holding one integer, such as a sysctl.
func readInt(h Host, name string) (int, error) {
	b, err := h.ReadFile(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", name, err)
	}
	return n, nil
}

func sysctlPath(key string) string {
	return "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
}

// checkForwarding flags IP forwarding on a backend (docs/field-notes.md, note 3): a
// backend that loses a VIP while still receiving decapsulated traffic for it
// routes the packets back to the network, and they loop until TTL runs out.
func checkForwarding(_ context.Context, h Host, s Spec) Result {
	r := Result{ID: IDForwarding, Name: "IP forwarding on a backend"}
	keys := []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"}
	var on, vals []string
	for _, k := range keys {
		v, err := readInt(h, sysctlPath(k))
		if err != nil {
			r.Status, r.Finding = Warn, fmt.Sprintf("reading %s: %v", k, err)
			return r
		}
		vals = append(vals, fmt.Sprintf("%s=%d", k, v))
		if v != 0 {
			on = append(on, k+"=0")
		}
	}
	observed := strings.Join(vals, ", ")
	switch {
	case !s.Backend:
		r.Status, r.Finding = Skip, "not a backend ("+observed+")"
	case len(on) == 0:
		r.Status, r.Finding = Pass, observed
	case s.AllowIPForward:
		r.Status = Warn
		r.Finding = observed + ": acknowledged by allow_ip_forward; the loop guard drops decapsulated traffic for unbound VIPs"
		r.Fix = "sysctl -w " + strings.Join(on, " ")
	default:
		r.Status = Fail
		r.Finding = observed + ": a backend that loses a VIP routes its decapsulated packets back out (forwarding loop)"
		r.Fix = "sysctl -w " + strings.Join(on, " ")
	}
	return r
}

// checkAcceptLocal verifies accept_local on the uplink when a GUE packet may
// come from this node itself (docs/field-notes.md, note 7): the kernel drops packets whose
// source is a local address unless accept_local is set (all OR interface).
func checkAcceptLocal(_ context.Context, h Host, s Spec) Result {
	r := Result{ID: "accept-local", Name: "accept_local for local GUE"}
	if s.Interface == "" {
		r.Status, r.Finding = Skip, "no interface configured"
		return r
	}
	all, err1 := readInt(h, sysctlPath("net.ipv4.conf.all.accept_local"))
	dev, err2 := readInt(h, "/proc/sys/net/ipv4/conf/"+s.Interface+"/accept_local")
	if err := firstErr(err1, err2); err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("reading accept_local: %v", err)
		return r
	}
	observed := fmt.Sprintf("net.ipv4.conf.all.accept_local=%d, net.ipv4.conf.%s.accept_local=%d", all, s.Interface, dev)
	switch {
	case !s.LocalGUE:
		r.Status, r.Finding = Skip, "no local GUE path configured ("+observed+")"
	case all != 0 || dev != 0:
		r.Status, r.Finding = Pass, observed
	default:
		r.Status = Fail
		r.Finding = observed + ": GUE packets sourced from this node's own address are dropped"
		r.Fix = fmt.Sprintf("sysctl -w net.ipv4.conf.%s.accept_local=1", s.Interface)
	}
	return r
}

// checkRPFilter flags strict reverse-path filtering on the uplink. The
// effective value is max(all, interface). Strict mode (1) drops a
// decapsulated packet whose client is routed out of another interface
// (asymmetric or ECMP uplinks); with local GUE it also checks the packet's
// own local source address against its route, which passes only when that
// address sits on the uplink. Loose mode (2) keeps both. This is a WARN,
// not a FAIL: single-uplink nodes with the underlay address on the uplink
// work in strict mode. TestLocalSourceDelivery shows this kernel behaviour.
func checkRPFilter(_ context.Context, h Host, s Spec) Result {
	r := Result{ID: "rp-filter", Name: "rp_filter on the uplink"}
	if s.Interface == "" {
		r.Status, r.Finding = Skip, "no interface configured"
		return r
	}
	all, err1 := readInt(h, sysctlPath("net.ipv4.conf.all.rp_filter"))
	dev, err2 := readInt(h, "/proc/sys/net/ipv4/conf/"+s.Interface+"/rp_filter")
	if err := firstErr(err1, err2); err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("reading rp_filter: %v", err)
		return r
	}
	eff := max(all, dev)
	observed := fmt.Sprintf("net.ipv4.conf.all.rp_filter=%d, net.ipv4.conf.%s.rp_filter=%d (effective %d)", all, s.Interface, dev, eff)
	fix := fmt.Sprintf("sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.%s.rp_filter=2", s.Interface)
	switch {
	case eff != 1:
		r.Status, r.Finding = Pass, observed
	case s.LocalGUE:
		r.Status = Warn
		r.Finding = observed + ": strict mode drops decapsulated packets from clients routed via another interface, " +
			"and local GUE packets whose source address is not on " + s.Interface
		r.Fix = fix
	default:
		r.Status = Warn
		r.Finding = observed + ": strict mode drops decapsulated packets from clients routed via another interface"
		r.Fix = fix
	}
	return r
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
