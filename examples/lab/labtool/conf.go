package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vipd/vipd/examples/lab/labconf"
)

// conf writes the lab nodes' vipd configs (lab.sh up calls it) and, in
// OSPF mode, the operator's bird.conf of the node that includes vipd's file.
func conf(args []string) error {
	fs := flag.NewFlagSet("conf", flag.ExitOnError)
	run := fs.String("run", "", "the lab's run directory (sockets, pins, state, configs)")
	node := fs.String("node", "", "write this node's config only (default: every node)")
	timers := fs.String("timers", "default", "default (the demo's) or fast (the property test's)")
	vips := fs.String("vips", labconf.DefaultVIP.Addr.String()+","+labconf.DefaultVIP6.Addr.String(),
		"VIP addresses, comma separated; each serves tcp/80")
	mode := fs.String("mode", labconf.ModeBGP, "routing mode: bgp or ospf")
	birdBin := fs.String("bird", "", "the nodes' bird binary in ospf mode (default: the installed one)")
	ignoreMTU := fs.Bool("ignore-mtu", false, "ospf mode: ignore_mtu on the nodes' OSPF instances (a patched bird)")
	switchMTU := fs.Int("switch-mtu", 0, "[dataplane] switch_mtu (0: unset)")
	guard := fs.Duration("guard-timeout", 0, "ospf mode: [routing.bird] guard_timeout (0: vipd's default)")
	vipctl := fs.String("vipctl", "", "vipctl to ask which optional keys the vipd knows (default: write them all)")
	spec := fs.String("spec", "", "a labconf.Spec as JSON instead of the flags above")
	fs.Parse(args)
	if *run == "" {
		return fmt.Errorf("conf: -run is required")
	}
	s := labconf.Default(*run)
	switch *timers {
	case "default":
	case "fast":
		s.Timers = labconf.FastTimers
	default:
		return fmt.Errorf("conf: -timers %q: want default or fast", *timers)
	}
	switch *mode {
	case labconf.ModeBGP, labconf.ModeOSPF:
		s.Mode = *mode
	default:
		return fmt.Errorf("conf: -mode %q: want bgp or ospf", *mode)
	}
	s.Bird, s.IgnoreMTU, s.SwitchMTU, s.GuardTimeout = *birdBin, *ignoreMTU, *switchMTU, time.Duration(*guard)
	s.VIPs = nil
	for _, a := range strings.Split(*vips, ",") {
		addr, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("conf: -vips: %w", err)
		}
		v := labconf.VIP{Addr: addr, Services: []string{"tcp/80"}}
		switch addr {
		case labconf.DefaultVIP.Addr:
			v.Name = labconf.DefaultVIP.Name
		case labconf.DefaultVIP6.Addr:
			v.Name = labconf.DefaultVIP6.Name
		}
		s.VIPs = append(s.VIPs, v)
	}
	if *spec != "" {
		data, err := os.ReadFile(*spec)
		if err != nil {
			return err
		}
		s = labconf.Spec{}
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("conf: reading %s: %w", *spec, err)
		}
		s.Run = *run
	}
	if *vipctl != "" {
		var dropped []string
		var err error
		if s, dropped, err = s.Supported(*vipctl); err != nil {
			return err
		}
		if len(dropped) > 0 {
			fmt.Fprintf(os.Stderr, "labtool conf: this vipd does not know %s: left out\n", strings.Join(dropped, ", "))
		}
	}
	if *node != "" {
		return s.Write(*node)
	}
	return s.WriteAll()
}
