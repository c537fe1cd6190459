package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/vipd/vipd/examples/lab/labconf"
)

// conf writes the lab nodes' vipd configs (lab.sh up calls it).
func conf(args []string) error {
	fs := flag.NewFlagSet("conf", flag.ExitOnError)
	run := fs.String("run", "", "the lab's run directory (sockets, pins, state, configs)")
	node := fs.String("node", "", "write this node's config only (default: every node)")
	timers := fs.String("timers", "default", "default (the demo's) or fast (the property test's)")
	vips := fs.String("vips", labconf.DefaultVIP.Addr.String(), "VIP addresses, comma separated; each serves tcp/80")
	vipctl := fs.String("vipctl", "", "vipctl to ask which optional keys the vipd knows (default: write them all)")
	spec := fs.String("spec", "", "a labconf.Spec as JSON instead of -timers and -vips")
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
	s.VIPs = nil
	for i, a := range strings.Split(*vips, ",") {
		addr, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("conf: -vips: %w", err)
		}
		v := labconf.VIP{Addr: addr, Services: []string{"tcp/80"}}
		if i == 0 {
			v.Name = labconf.DefaultVIP.Name
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
