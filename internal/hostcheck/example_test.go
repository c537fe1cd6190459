package hostcheck_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/hostcheck"
	"github.com/vipd/vipd/routing"
)

// `vipctl doctor [--json]`: the caller fills the Spec from the parsed
// config (and wires routing/bird's ProbeIgnoreMTU).
func Example_doctor() {
	spec := hostcheck.Spec{
		Interface: "eth0", Backend: true, AttachMode: dataplane.AttachAuto, SwitchMTU: 9000,
		VIPs:        []netip.Addr{netip.MustParseAddr("2001:db8::10")},
		RoutingMode: routing.ModeBirdOSPF, BirdSocket: "/run/bird/bird.ctl", BirdBinary: "bird",
	}
	r := hostcheck.Run(context.Background(), hostcheck.System(), spec)
	asJSON := len(os.Args) > 1 && os.Args[1] == "--json"
	if asJSON {
		r.WriteJSON(os.Stdout)
	} else {
		r.WriteTable(os.Stdout)
	}
	os.Exit(r.ExitCode()) // 0 pass, 1 warn, 2 fail
}

// vipd start-up: log the findings, refuse to start on forwarding, pick the
// attach mode for "auto", hold IPv6 VIPs without a route back.
func Example_start() {
	logger := hclog.New(nil)
	spec := hostcheck.Spec{Interface: "eth0", Backend: true, AttachMode: dataplane.AttachAuto}
	r := hostcheck.Run(context.Background(), hostcheck.System(), spec)
	r.Log(logger)
	if err := hostcheck.StartError(r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	if generic, reason := hostcheck.SafeAttachMode(r); generic {
		logger.Warn("attaching generic XDP", "iface", spec.Interface, "reason", reason)
	}
	if hold, reason := hostcheck.HoldIPv6(r); hold {
		logger.Warn("not announcing IPv6 VIPs", "reason", reason)
	}
}
