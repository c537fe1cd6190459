package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/fielderr"
	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/bird"
	"github.com/vipd/vipd/vip"
)

// build turns the raw file into a Config, recording every mistake.
func (p *parser) build(raw *rawFile) *Config {
	cfg := &Config{File: p.file}
	p.node(raw.Node, &cfg.Node)
	p.cluster(raw.Cluster, &cfg.Cluster)
	p.nodeMember(cfg)
	for i := range raw.VIPs {
		if v, ok := p.vip(i, &raw.VIPs[i]); ok {
			cfg.VIPs = append(cfg.VIPs, v)
			p.vipIdx = append(p.vipIdx, i)
		}
	}
	p.vipsAcross(cfg)
	p.dataplane(raw.Dataplane, &cfg.Dataplane)
	p.timers(raw.Timers, cfg)
	p.api(raw.API, cfg)
	p.routing(raw.Routing, cfg)
	p.limits(cfg)
	return cfg
}

func (p *parser) node(prim *tomlPrim, n *Node) {
	n.StateDir = statedir.DefaultPath
	if prim == nil {
		p.errorf("node", "missing section [node]")
		return
	}
	var r rawNode
	if !p.decode(prim, "node", &r) {
		return
	}
	n.Name = r.Name
	if r.Name == "" {
		p.missing("node.name")
	}
	n.RouterID = p.addrFamily("node.router_id", r.RouterID, 32, false)
	n.UnderlayV4 = p.addrFamily("node.underlay_v4", r.UnderlayV4, 32, false)
	n.UnderlayV6 = p.addrFamily("node.underlay_v6", r.UnderlayV6, 128, false)
	n.AllowIPForward = r.AllowIPForward
	n.StartDrained = r.StartDrained
	n.StateDir = statedir.DefaultPath
	if r.StateDir != "" {
		if !filepath.IsAbs(r.StateDir) {
			p.errorf("node.state_dir", "%q is not an absolute path", r.StateDir)
		} else {
			n.StateDir = filepath.Clean(r.StateDir)
		}
	}
	n.ClientPrefixes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	if r.ClientPrefixes != nil {
		n.ClientPrefixes = nil
		for i, s := range *r.ClientPrefixes {
			path := fmt.Sprintf("node.client_prefixes[%d]", i)
			pfx, err := netip.ParsePrefix(s)
			switch {
			case err != nil:
				p.errorf(path, "%q is not a prefix (like \"192.0.2.0/24\")", s)
			case pfx != pfx.Masked():
				p.errorf(path, "%q has host bits set (did you mean %s?)", s, pfx.Masked())
			default:
				n.ClientPrefixes = append(n.ClientPrefixes, pfx)
			}
		}
	}
}

func (p *parser) cluster(prim *tomlPrim, c *Cluster) {
	c.PollInterval, c.PollTimeout = DefaultPollInterval, DefaultPollTimeout
	c.Rise, c.Fall = DefaultRise, DefaultFall
	c.Backend, c.MaxClockSkew = BackendPoll, DefaultMaxClockSkew
	c.ProbeInterval, c.ProbeTimeout = DefaultProbeInterval, DefaultProbeTimeout
	c.ProbeFailures, c.ProbeSuccesses = DefaultProbeFailures, DefaultProbeSuccesses
	if prim == nil {
		p.errorf("cluster", "missing section [cluster]")
		return
	}
	var r rawCluster
	if !p.decode(prim, "cluster", &r) {
		return
	}
	if r.Seed != nil {
		if *r.Seed < 0 {
			p.errorf("cluster.seed", "%d must not be negative", *r.Seed)
		} else {
			c.Seed = uint64(*r.Seed)
		}
	}
	c.PollInterval = p.duration("cluster.poll_interval", r.PollInterval, DefaultPollInterval)
	c.PollTimeout = p.duration("cluster.poll_timeout", r.PollTimeout, DefaultPollTimeout)
	if c.PollTimeout >= c.PollInterval {
		p.errorf("cluster.poll_timeout", "%s must be shorter than poll_interval %s", c.PollTimeout, c.PollInterval)
	}
	c.Rise = p.count("cluster.rise", r.Rise, DefaultRise)
	c.Fall = p.count("cluster.fall", r.Fall, DefaultFall)
	c.SlowStart = p.slowStart(r.SlowStart)
	c.RestartGrace = p.duration("cluster.restart_grace", r.RestartGrace, DefaultRestartGrace)
	if c.RestartGrace < MinRestartGrace || c.RestartGrace > MaxRestartGrace {
		p.errorf("cluster.restart_grace", "%s is out of range %s-%s", c.RestartGrace, MinRestartGrace, MaxRestartGrace)
		c.RestartGrace = DefaultRestartGrace
	}
	p.probe(&r, c)
	p.clusterState(&r, c, len(r.Members))

	if len(r.Members) == 0 {
		p.errorf("cluster.member", "no [[cluster.member]]: list every node, this one included")
	}
	names := map[string]int{}
	addrs := map[netip.Addr]int{}
	urls := map[string]int{}
	for i := range r.Members {
		path := fmt.Sprintf("cluster.member[%d]", i)
		var rm rawMember
		if !p.decode(&r.Members[i], path, &rm) {
			continue
		}
		m := Member{Name: rm.Name}
		if rm.Name == "" {
			p.missing(path + ".name")
		} else if j, dup := names[rm.Name]; dup {
			p.errorf(path+".name", "%q duplicates cluster.member[%d]", rm.Name, j)
		} else {
			names[rm.Name] = i
		}
		m.UnderlayV4 = p.addrFamily(path+".underlay_v4", rm.UnderlayV4, 32, false)
		m.UnderlayV6 = p.addrFamily(path+".underlay_v6", rm.UnderlayV6, 128, false)
		if rm.UnderlayV4 == "" && rm.UnderlayV6 == "" {
			p.errorf(path, "needs underlay_v4 or underlay_v6 (the GUE destination)")
		}
		for _, f := range []struct {
			key string
			a   netip.Addr
		}{{"underlay_v4", m.UnderlayV4}, {"underlay_v6", m.UnderlayV6}} {
			if !f.a.IsValid() {
				continue
			}
			if j, dup := addrs[f.a]; dup {
				p.errorf(path+"."+f.key, "%s is also the underlay address of cluster.member[%d]", f.a, j)
			} else {
				addrs[f.a] = i
			}
		}
		if rm.StateURL == "" {
			p.missing(path + ".state_url")
		} else if u, err := url.Parse(rm.StateURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
			p.errorf(path+".state_url", "%q is not an http(s) URL", rm.StateURL)
		} else if j, dup := urls[u.String()]; dup {
			p.errorf(path+".state_url", "%q is also the state_url of cluster.member[%d]", rm.StateURL, j)
		} else {
			urls[u.String()] = i
			m.StateURL = *u
		}
		m.Weight = DefaultWeight
		if rm.Weight != nil {
			if w := *rm.Weight; w < MinWeight || w > MaxWeight {
				p.errorf(path+".weight", "%d is out of range %d-%d (a node that should take no new flows is drained: vipctl drain)", w, MinWeight, MaxWeight)
			} else {
				m.Weight = int(w)
			}
		}
		c.Members = append(c.Members, m)
	}
}

// slowStart parses [cluster] slow_start: absent or "0s" is off, else
// MinSlowStart..MaxSlowStart.
func (p *parser) slowStart(s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.errorf("cluster.slow_start", "%q is not a duration (like \"1m\" or \"30s\")", s)
	case d == 0:
	case d < MinSlowStart || d > MaxSlowStart:
		p.errorf("cluster.slow_start", "%s is out of range %s-%s (or 0s: off)", d, MinSlowStart, MaxSlowStart)
		d = 0
	}
	if err != nil {
		return 0
	}
	return d
}

// count parses a rise/fall counter (1..1000), def when unset.
func (p *parser) count(path string, v *int64, def int) int {
	if v == nil {
		return def
	}
	if *v < 1 || *v > 1000 {
		p.errorf(path, "%d is out of range 1-1000", *v)
		return def
	}
	return int(*v)
}

// nodeMember checks [node] against its own [[cluster.member]] entry and
// fills the node's defaults from it.
func (p *parser) nodeMember(cfg *Config) {
	n := &cfg.Node
	if n.Name == "" {
		return
	}
	idx := -1
	for i, m := range cfg.Cluster.Members {
		if m.Name == n.Name {
			idx = i
			break
		}
	}
	if idx < 0 {
		if len(cfg.Cluster.Members) > 0 {
			p.errorf("node.name", "%q is not a [[cluster.member]]", n.Name)
		}
		return
	}
	m := cfg.Cluster.Members[idx]
	for _, f := range []struct {
		key        string
		node, memb *netip.Addr
	}{{"underlay_v4", &n.UnderlayV4, &m.UnderlayV4}, {"underlay_v6", &n.UnderlayV6, &m.UnderlayV6}} {
		switch {
		case !f.node.IsValid():
			*f.node = *f.memb
		case *f.node != *f.memb:
			p.errorf("node."+f.key, "%s differs from cluster.member[%d].%s (%s), this node's entry", *f.node, idx, f.key, orNone(*f.memb))
		}
	}
	if !n.RouterID.IsValid() {
		if n.UnderlayV4.IsValid() {
			n.RouterID = n.UnderlayV4
		} else {
			p.errorf("node.router_id", "required when the node has no underlay_v4")
		}
	}
}

func orNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

func (p *parser) vip(i int, prim *tomlPrim) (VIP, bool) {
	path := fmt.Sprintf("vip[%d]", i)
	var r rawVIP
	if !p.decode(prim, path, &r) {
		return VIP{}, false
	}
	v := VIP{Name: r.Name}
	v.Addr = p.vipAddr(path+".address", r.Address)

	if len(r.Services) == 0 {
		p.errorf(path+".services", "at least one service (like \"tcp/80\" or \"udp/*\") is required")
	}
	seen := map[vip.Service]int{}
	for j, s := range r.Services {
		spath := fmt.Sprintf("%s.services[%d]", path, j)
		svc, err := vip.ParseService(s)
		if err != nil {
			p.add(&fielderr.Error{Path: spath, Err: err})
			continue
		}
		if k, dup := seen[svc]; dup {
			p.errorf(spath, "%q duplicates services[%d]", s, k)
			continue
		}
		seen[svc] = j
		v.Services = append(v.Services, svc)
	}
	for j, s := range r.Services {
		svc, err := vip.ParseService(s)
		if err != nil || svc.Port == 0 || seen[svc] != j {
			continue
		}
		if k, ok := seen[vip.Service{Proto: svc.Proto}]; ok {
			p.errorf(fmt.Sprintf("%s.services[%d]", path, j), "%q is already covered by %q", s, r.Services[k])
		}
	}

	// A forgotten check must not make a silently healthy backend: serving
	// without one is said explicitly with type = "none".
	if r.Check == nil {
		p.errorf(path+".check", "missing section [vip.check] (type = \"none\" serves without a check)")
	} else if p.decode(r.Check, path+".check", &v.Check) {
		p.add(fielderr.Prefix(path+".check", v.Check.Validate()))
	}
	if r.BGP != nil {
		p.decode(r.BGP, path+".bgp", &v.BGP)
	}
	if r.OSPF != nil {
		p.decode(r.OSPF, path+".ospf", &v.OSPF)
	}
	return v, v.Addr.IsValid()
}

// vipAddr parses a VIP: a host address, written bare or as a /32 or /128.
func (p *parser) vipAddr(path, s string) netip.Addr {
	if s == "" {
		p.missing(path)
		return netip.Addr{}
	}
	if pfx, err := netip.ParsePrefix(s); err == nil {
		if !pfx.IsSingleIP() {
			p.errorf(path, "%q is a prefix, not a host address (/32 or /128)", s)
			return netip.Addr{}
		}
		s = pfx.Addr().String()
	}
	a := p.addr(path, s, true)
	if !a.IsValid() {
		return a
	}
	var why string
	switch {
	case a.IsUnspecified():
		why = "unspecified"
	case a.IsLoopback():
		why = "loopback"
	case a.IsMulticast():
		why = "multicast"
	case a.IsLinkLocalUnicast():
		why = "link-local"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		why = "broadcast"
	}
	if why != "" {
		p.errorf(path, "%s is a %s address, it cannot be a VIP", a, why)
		return netip.Addr{}
	}
	return a
}

// vipsAcross checks the VIPs against each other and the cluster.
func (p *parser) vipsAcross(cfg *Config) {
	byAddr := map[netip.Addr]int{}
	byName := map[string]int{}
	needFamily := map[int]int{} // bits -> first VIP index of that family
	for i, v := range cfg.VIPs {
		path := fmt.Sprintf("vip[%d]", p.vipIdx[i])
		if j, dup := byAddr[v.Addr]; dup {
			p.errorf(path+".address", "%s duplicates vip[%d]", v.Addr, j)
		} else {
			byAddr[v.Addr] = p.vipIdx[i]
		}
		if v.Name != "" {
			if j, dup := byName[v.Name]; dup {
				p.errorf(path+".name", "%q duplicates vip[%d]", v.Name, j)
			} else {
				byName[v.Name] = p.vipIdx[i]
			}
		}
		if _, ok := needFamily[v.Addr.BitLen()]; !ok {
			needFamily[v.Addr.BitLen()] = p.vipIdx[i]
		}
		for j, m := range cfg.Cluster.Members {
			if v.Addr == m.UnderlayV4 || v.Addr == m.UnderlayV6 {
				p.errorf(path+".address", "%s is the underlay address of cluster.member[%d] (%s)", v.Addr, j, m.Name)
			}
		}
		if v.Addr == cfg.Node.RouterID {
			p.errorf(path+".address", "%s is the node's router_id", v.Addr)
		}
	}
	for _, bits := range []int{32, 128} {
		i, ok := needFamily[bits]
		if !ok {
			continue
		}
		fam, key := "IPv4", "underlay_v4"
		if bits == 128 {
			fam, key = "IPv6", "underlay_v6"
		}
		path := fmt.Sprintf("vip[%d].address", i)
		if cfg.Node.Name != "" && !underlay(cfg.Node.UnderlayV4, cfg.Node.UnderlayV6, bits).IsValid() {
			p.errorf(path, "%s VIP, but this node has no %s", fam, key)
		}
		for j, m := range cfg.Cluster.Members {
			if m.Name != cfg.Node.Name && !underlay(m.UnderlayV4, m.UnderlayV6, bits).IsValid() {
				p.errorf(path, "%s VIP, but cluster.member[%d] (%s) has no %s", fam, j, m.Name, key)
			}
		}
	}
}

// underlay picks the v4 or v6 address by address length.
func underlay(v4, v6 netip.Addr, bits int) netip.Addr {
	if bits == 32 {
		return v4
	}
	return v6
}

func (p *parser) dataplane(prim *tomlPrim, d *Dataplane) {
	d.Attach, d.GUEPort, d.PinPath = dataplane.AttachAuto, dataplane.DefaultGUEPort, DefaultPinPath
	if prim == nil {
		p.errorf("dataplane", "missing section [dataplane]")
		return
	}
	var r rawDataplane
	if !p.decode(prim, "dataplane", &r) {
		return
	}
	switch {
	case r.Interface == "":
		p.missing("dataplane.interface")
	case len(r.Interface) > 15 || strings.ContainsAny(r.Interface, "/: \t\n") || r.Interface == "." || r.Interface == "..":
		p.errorf("dataplane.interface", "%q is not an interface name", r.Interface)
	default:
		d.Interface = r.Interface
	}
	if r.Attach != "" {
		if m, err := dataplane.ParseAttachMode(r.Attach); err != nil {
			p.errorf("dataplane.attach", "%q is not one of native, generic, auto", r.Attach)
		} else {
			d.Attach = m
		}
	}
	if r.GUEPort != nil {
		if *r.GUEPort < 1 || *r.GUEPort > 65535 {
			p.errorf("dataplane.gue_port", "%d is out of range 1-65535", *r.GUEPort)
		} else {
			d.GUEPort = uint16(*r.GUEPort)
		}
	}
	if r.PinPath != "" {
		if !filepath.IsAbs(r.PinPath) {
			p.errorf("dataplane.pin_path", "%q is not an absolute path", r.PinPath)
		} else {
			d.PinPath = filepath.Clean(r.PinPath)
		}
	}
	if r.SwitchMTU != 0 && (r.SwitchMTU < 68 || r.SwitchMTU > 65535) {
		p.errorf("dataplane.switch_mtu", "%d is out of range 68-65535", r.SwitchMTU)
	} else {
		d.SwitchMTU = int(r.SwitchMTU)
	}
	p.dataplaneTrust(&r, d)
}

func (p *parser) timers(prim *tomlPrim, cfg *Config) {
	t := &cfg.Timers
	t.WithdrawGrace, t.TableGrace, t.DrainTimeout = DefaultWithdrawGrace, DefaultTableGrace, DefaultDrainTimeout
	t.RemoveTimeout = DefaultDrainTimeout
	t.VerifyInterval, t.VerifySettle = DefaultVerifyInterval, DefaultVerifySettle
	var r rawTimers
	if prim != nil && !p.decode(prim, "timers", &r) {
		return
	}
	t.WithdrawGrace = p.duration("timers.withdraw_grace", r.WithdrawGrace, DefaultWithdrawGrace)
	t.TableGrace = p.duration("timers.table_grace", r.TableGrace, DefaultTableGrace)
	t.DrainTimeout = p.duration("timers.drain_timeout", r.DrainTimeout, DefaultDrainTimeout)
	t.RemoveTimeout = p.duration("timers.remove_timeout", r.RemoveTimeout, t.DrainTimeout)
	t.VerifyInterval = p.duration("timers.verify_interval", r.VerifyInterval, DefaultVerifyInterval)
	t.VerifySettle = p.duration("timers.verify_settle", r.VerifySettle, DefaultVerifySettle)
	// Peers need fall polls to drop this node from their tables; unbinding
	// sooner would blackhole (or loop, docs/field-notes.md, note 3) what they still send.
	c := cfg.Cluster
	if c.Backend == BackendEtcd && c.Etcd != nil {
		// With etcd, peers notice when the lease expires (etcd checks
		// expiry about twice a second: one second of margin).
		if peersNotice := c.Etcd.LeaseTTL + time.Second; t.TableGrace < peersNotice {
			p.errorf("timers.table_grace", "%s is shorter than the %s peers take to notice a node leave (cluster.etcd.lease_ttl + 1s)", t.TableGrace, peersNotice)
		}
	} else if peersNotice := c.PollInterval*time.Duration(c.Fall) + c.PollTimeout; t.TableGrace < peersNotice {
		p.errorf("timers.table_grace", "%s is shorter than the %s peers take to notice a node leave (poll_interval x fall + poll_timeout)", t.TableGrace, peersNotice)
	}
}

func (p *parser) api(prim *tomlPrim, cfg *Config) {
	a := &cfg.API
	a.Socket = api.DefaultSocket
	var r rawAPI
	if prim != nil && !p.decode(prim, "api", &r) {
		return
	}
	if r.Socket != "" {
		if !filepath.IsAbs(r.Socket) {
			p.errorf("api.socket", "%q is not an absolute path", r.Socket)
		} else {
			a.Socket = filepath.Clean(r.Socket)
		}
	}
	if r.StateListen != "" {
		a.StateListen = p.addrPort("api.state_listen", r.StateListen)
	} else if m, ok := cfg.Member(cfg.Node.Name); ok && m.StateURL.Host != "" {
		ap, err := urlAddrPort(m.StateURL)
		if err != nil {
			p.errorf("api.state_listen", "required: cannot default it from this node's state_url: %v", err)
		} else {
			a.StateListen = ap
		}
	}
	if r.MetricsListen != "" {
		a.MetricsListen = p.addrPort("api.metrics_listen", r.MetricsListen)
	}
}

// urlAddrPort turns the host and port of an http(s) URL into an AddrPort.
func urlAddrPort(u url.URL) (netip.AddrPort, error) {
	host, port := u.Hostname(), u.Port()
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("host %q is not an IP address", host)
	}
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return netip.AddrPort{}, fmt.Errorf("port %q is not a port", port)
	}
	return netip.AddrPortFrom(a, uint16(n)), nil
}

func (p *parser) routing(prim *tomlPrim, cfg *Config) {
	if prim == nil {
		p.errorf("routing", "missing section [routing]")
		return
	}
	var r rawRouting
	if !p.decode(prim, "routing", &r) {
		return
	}
	rt := &cfg.Routing
	var bc *rawBGP
	var bd *rawBird
	// Decode both sections whatever the mode, so that their keys are
	// checked too.
	if r.BGP != nil {
		bc = &rawBGP{}
		if !p.decode(r.BGP, "routing.bgp", bc) {
			bc = nil
		}
	}
	if r.Bird != nil {
		bd = &rawBird{}
		if !p.decode(r.Bird, "routing.bird", bd) {
			bd = nil
		}
	}
	if r.Mode == "" {
		p.missing("routing.mode")
		return
	}
	mode, err := routing.ParseMode(r.Mode)
	if err != nil {
		p.errorf("routing.mode", "%q is not one of bgp, bird-ospf", r.Mode)
		return
	}
	rt.Mode = mode
	switch mode {
	case routing.ModeBGP:
		p.modeSections(cfg, "bgp", r.BGP != nil, "bird", r.Bird != nil)
		if bc != nil {
			rt.Drain = p.drainPolicy("routing.bgp.drain", bc.Drain)
			p.bgp(cfg, &bc.Config)
		}
	case routing.ModeBirdOSPF:
		p.modeSections(cfg, "bird", r.Bird != nil, "bgp", r.BGP != nil)
		if bd != nil {
			rt.Drain = p.drainPolicy("routing.bird.drain", bd.Drain)
			if rt.Drain == vip.DrainDeprefer && bd.DrainMetric == 0 {
				p.errorf("routing.bird.drain_metric", "is required with drain = %q", vip.DrainDeprefer)
			}
			p.bird(cfg, &bd.Config)
		}
	}
}

// drainPolicy parses a mode section's drain key ("" is the default,
// withdraw).
func (p *parser) drainPolicy(path, s string) vip.DrainPolicy {
	if s == "" {
		return vip.DrainWithdraw
	}
	d, err := vip.ParseDrainPolicy(s)
	if err != nil {
		p.errorf(path, "%q is neither %q nor %q", s, vip.DrainWithdraw, vip.DrainDeprefer)
	}
	return d
}

// modeSections checks that the mode's section is there and the other
// mode's (and its per-VIP attributes) are not.
func (p *parser) modeSections(cfg *Config, want string, have bool, other string, haveOther bool) {
	mode := cfg.Routing.Mode
	if !have {
		p.errorf("routing."+want, "missing section [routing.%s] (routing.mode is %q)", want, mode)
	}
	if haveOther {
		p.errorf("routing."+other, "set, but routing.mode is %q", mode)
	}
	attr := map[string]string{"bgp": "bgp", "bird": "ospf"}[other]
	for i := range cfg.VIPs {
		path := fmt.Sprintf("vip[%d].%s", p.vipIdx[i], attr)
		if _, ok := p.idx.lines[path]; ok {
			p.errorf(path, "set, but routing.mode is %q", mode)
		}
	}
}

func (p *parser) bgp(cfg *Config, c *bgp.Config) {
	if !c.RouterID.IsValid() {
		c.RouterID = cfg.Node.RouterID
	}
	if !c.NextHop4.IsValid() {
		c.NextHop4 = cfg.Node.UnderlayV4
	}
	if !c.NextHop6.IsValid() {
		c.NextHop6 = cfg.Node.UnderlayV6
	}
	for _, v := range cfg.VIPs {
		c.VIPs = append(c.VIPs, bgp.VIPRoute{Prefix: v.Prefix(), Attrs: v.BGP})
	}
	p.add(p.routingErrs(cfg, "routing.bgp", "bgp", c.Validate()))
	cfg.Routing.BGP = c
}

func (p *parser) bird(cfg *Config, c *bird.Config) {
	if !c.RouterID.IsValid() {
		c.RouterID = cfg.Node.RouterID
	}
	for _, v := range cfg.VIPs {
		c.VIPs = append(c.VIPs, bird.VIPRoute{Prefix: v.Prefix(), Attrs: v.OSPF})
	}
	p.add(p.routingErrs(cfg, "routing.bird", "ospf", c.Validate()))
	cfg.Routing.Bird = c
}

// vipRouteRE and vipMsgRE match the two ways routing packages name the
// VIP an error is about: a path "routing.bgp.vip(198.51.100.10/32).med", or
// a message "VIP 198.51.100.10/32: ...".
var (
	vipRouteRE = regexp.MustCompile(`^routing\.(?:bgp|bird)\.vip\(([^)]*)\)(.*)$`)
	vipMsgRE   = regexp.MustCompile(`(?s)^VIP (\S+): (.*)$`)
)

// routingErrs makes the errors of a routing section's Validate absolute
// and moves per-VIP ones to the [[vip]] they come from ("vip[1].bgp.med"),
// so they get that line.
func (p *parser) routingErrs(cfg *Config, section, attr string, err error) error {
	var out []error
	for _, e := range fielderr.All(err) {
		var fe *fielderr.Error
		if m := vipRouteRE.FindStringSubmatch(section + "." + pathOf(e)); m != nil && errors.As(e, &fe) {
			if i := p.vipByPrefix(cfg, m[1]); i >= 0 {
				out = append(out, &fielderr.Error{Path: fmt.Sprintf("vip[%d].%s%s", i, attr, m[2]), Err: fe.Err})
				continue
			}
		}
		if _, ok := e.(*fielderr.Error); !ok {
			// A plain (possibly wrapping) error: fielderr.Prefix would
			// dig out a wrapped path and drop the text around it.
			if m := vipMsgRE.FindStringSubmatch(e.Error()); m != nil {
				if i := p.vipByPrefix(cfg, m[1]); i >= 0 {
					path := fmt.Sprintf("vip[%d].%s", i, attr)
					if errors.As(e, &fe) {
						out = append(out, fielderr.Prefix(path, fe))
					} else {
						out = append(out, &fielderr.Error{Path: path, Err: errors.New(m[2])})
					}
					continue
				}
			}
			out = append(out, &fielderr.Error{Path: section, Err: e})
			continue
		}
		out = append(out, fielderr.Prefix(section, e))
	}
	return errors.Join(out...)
}

// pathOf is the path of a top-level *fielderr.Error, or "".
func pathOf(e error) string {
	if fe, ok := e.(*fielderr.Error); ok {
		return fe.Path
	}
	return ""
}

// vipByPrefix returns the [[vip]] index of the VIP written as s (a host
// prefix or an address), or -1.
func (p *parser) vipByPrefix(cfg *Config, s string) int {
	for i, v := range cfg.VIPs {
		if v.Prefix().String() == s || v.Addr.String() == s {
			return p.vipIdx[i]
		}
	}
	return -1
}
