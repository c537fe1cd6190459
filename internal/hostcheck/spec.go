package hostcheck

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/vipd/vipd/internal/config"
)

// SpecFor fills a Spec from a node's validated configuration, so vipd at
// start-up and `vipctl doctor -c FILE` check the same things.
func SpecFor(c *config.Config) Spec {
	s := Spec{
		Interface:      c.Dataplane.Interface,
		Backend:        true, // symmetric cluster: every node is a backend
		AllowIPForward: c.Node.AllowIPForward,
		SwitchMTU:      c.Dataplane.SwitchMTU,
		AttachMode:     c.Dataplane.Attach,
		ClientPrefixes: c.Node.ClientPrefixes,
		RoutingMode:    c.Routing.Mode,
		GUEPort:        c.Dataplane.GUEPort,
		AllowedSources: c.Dataplane.AllowedSources,
		StateDir:       c.Node.StateDir,
	}
	for _, v := range c.VIPs {
		s.VIPs = append(s.VIPs, v.Addr)
	}
	for _, m := range c.Cluster.Members {
		for _, a := range []netip.Addr{m.UnderlayV4, m.UnderlayV6} {
			if a.IsValid() {
				s.Members++
			}
		}
		if m.Name != c.Node.Name {
			s.PeerStateURLs = append(s.PeerStateURLs, m.StateURL.String())
		}
	}
	if b := c.Routing.BGP; b != nil && b.ListenPort >= 0 {
		port := int(b.ListenPort)
		if port == 0 {
			port = 179
		}
		host := "0.0.0.0"
		if len(b.ListenAddresses) > 0 {
			host = b.ListenAddresses[0].String()
		}
		s.BGPListen = net.JoinHostPort(host, strconv.Itoa(port))
	}
	if b := c.Routing.Bird; b != nil {
		s.Bird = b
		s.BirdSocket = b.Socket
		s.BirdBinary = b.Bird
		for _, o := range b.OSPF {
			s.IgnoreMTU = s.IgnoreMTU || o.IgnoreMTU
		}
	}
	return s
}
