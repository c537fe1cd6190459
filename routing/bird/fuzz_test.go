package bird

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/routing"
)

// FuzzRoutesRoundTrip: whatever routes are rendered, routesInFile reads
// the same announced set back (it is how a restarted vipd adopts state).
func FuzzRoutesRoundTrip(f *testing.F) {
	f.Add([]byte{192, 0, 2, 10, 32, 0}, uint32(20), 2, uint32(0), true)
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 128, 1}, uint32(1<<24-1), 1, uint32(7), false)
	f.Fuzz(func(t *testing.T, raw []byte, metric uint32, typ int, tag uint32, deprefer bool) {
		cfg := v4v6Config()
		cfg.VIPs = nil
		var routes []routing.Route
		for len(raw) >= 6 {
			var p netip.Prefix
			if raw[0]&1 == 0 || len(raw) < 18 {
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte(raw[1:5])), int(raw[5])%33).Masked()
				raw = raw[6:]
			} else {
				p = netip.PrefixFrom(netip.AddrFrom16([16]byte(raw[1:17])), int(raw[17])%129).Masked()
				raw = raw[18:]
			}
			cfg.VIPs = append(cfg.VIPs, VIPRoute{Prefix: p, Attrs: RouteAttrs{Metric: metric % (1 << 24), Type: typ%2 + 1, Tag: tag}})
			draining := metric%3 == 0
			if draining && !deprefer {
				continue // the withdraw policy: the state machine leaves it out
			}
			routes = append(routes, routing.Route{Prefix: p, Draining: draining})
		}
		data, err := Render(cfg, routes)
		if err != nil {
			t.Fatal(err)
		}
		want := announced(routes)
		if diff := cmp.Diff(want, routesInFile(data), routeOpts, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip (-rendered +parsed):\n%s", diff)
		}
	})
}

// FuzzParsers: birdc output parsers never panic.
func FuzzParsers(f *testing.F) {
	f.Add("BIRD 2.0.12 ready.\nReading configuration from /x\n/x:2:10 syntax error\n")
	f.Add("o:\nRouter ID   \tPri\t     State     \tDTime\tInterface  Router IP\n10.0.0.2 1 Full/PtP 2.9 eth0 10.0.0.2\n")
	f.Add("<RMT> o: MTU mismatch with nbr 1.2.3.4 on eth0 (remote 9000, local 1500)\n")
	f.Fuzz(func(t *testing.T, s string) {
		parseConfigureReply(s)
		parseNeighbors(s)
		ScanMTUMismatches(strings.NewReader(s))
		parseConfigError(s)
	})
}
