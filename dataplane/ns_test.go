//go:build linux

package dataplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/hashicorp/go-hclog"
	"github.com/vipd/vipd/internal/netnstest"
	"github.com/vipd/vipd/vip"
)

// The namespace lab of TestNamespaceTCP:
//
//	client 10.1.0.2 --- 10.1.0.1 [rt] 10.2.0.1 --- 10.2.0.2 director (vipd XDP)
//	                             [rt] 10.3.0.1 --- 10.3.0.2 be1 (vipd XDP, VIP on lo)
//	                             [rt] 10.4.0.1 --- 10.4.0.2 be2 (vipd XDP, VIP on lo)
//
// (IPv6: fd00:N::1/64 and fd00:N::2/64 instead of 10.N.0.1/24, 10.N.0.2/24.)
//
// rt routes the VIP to the director and forwards everything else; the
// director encapsulates to a backend (GUE) and sends it back out through
// rt (XDP_TX); backends decapsulate and answer the client directly (DSR).
// rt's veths carry a pass-through XDP program: XDP_TX out of a veth only
// reaches a peer that has a native XDP program (TESTBED.md).
type lab struct {
	t          *testing.T
	client     *netnstest.NS
	clientIf   string // the client's veth
	rtClientIf string // rt's veth towards the client
	rt         *netnstest.NS
	dir        *labNode
	be         map[string]*labNode
	vipAddr    netip.Addr
	port       uint16
	clientIP   netip.Addr
	seed       uint64
	nextPort   int
	v6         bool
}

type labNode struct {
	name   string
	ns     *netnstest.NS
	ifname string
	addr   netip.Addr
	opts   Options
	dp     *Dataplane
}

// subnet is rt's and the node's address on link N.
func (l *lab) subnet(n int) (gw, node netip.Addr) {
	if l.v6 {
		return netip.MustParseAddr(fmt.Sprintf("fd00:%d::1", n)), netip.MustParseAddr(fmt.Sprintf("fd00:%d::2", n))
	}
	return netip.MustParseAddr(fmt.Sprintf("10.%d.0.1", n)), netip.MustParseAddr(fmt.Sprintf("10.%d.0.2", n))
}

func (l *lab) fam() string {
	if l.v6 {
		return "-6"
	}
	return "-4"
}

// addrAdd puts a on dev (a host address when dev is lo), without DAD.
func (l *lab) addrAdd(ns *netnstest.NS, a netip.Addr, dev string) {
	bits := map[bool]int{false: 24, true: 64}[l.v6]
	if dev == "lo" {
		bits = a.BitLen()
	}
	argv := []string{"ip", l.fam(), "addr", "add", netip.PrefixFrom(a, bits).String(), "dev", dev}
	if l.v6 {
		argv = append(argv, "nodad")
	}
	ns.MustRun(l.t, argv...)
}

func (n *labNode) backend() vip.Backend { return vip.Backend{Name: n.name, Addr: n.addr} }

func sysctl(t *testing.T, ns *netnstest.NS, kv ...string) {
	t.Helper()
	for _, s := range kv {
		ns.MustRun(t, "sysctl", "-qw", s)
	}
}

func ifaceMAC(t *testing.T, ns *netnstest.NS, ifname string) string {
	t.Helper()
	return strings.TrimSpace(ns.MustRun(t, "cat", "/sys/class/net/"+ifname+"/address"))
}

// passXDP attaches an XDP_PASS program (native) to ifname in ns.
func passXDP(t *testing.T, ns *netnstest.NS, ifname string) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
		License:      "Dual BSD/GPL",
	})
	if err != nil {
		t.Fatalf("loading pass program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	var l link.Link
	err = ns.Do(func() error {
		iface, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: iface.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		t.Fatalf("attaching pass program to %s: %v", ifname, err)
	}
	t.Cleanup(func() { l.Close() })
}

// addNode creates a node namespace linked to rt on 10.<subnet>.0.0/24,
// with forwarding off as on a real node (Open turns it on for lo only, the
// device the program's fib lookups use) and rt's neighbour entry static,
// and opens a vipd dataplane on its veth.
func (l *lab) addNode(name string, subnet int) *labNode {
	t := l.t
	ns := netnstest.New(t, name)
	rtEnd, nodeEnd := netnstest.Veth(t, l.rt, ns)
	gw, addr := l.subnet(subnet)
	l.addrAdd(l.rt, gw, rtEnd)
	l.addrAdd(ns, addr, nodeEnd)
	ns.MustRun(t, "ip", l.fam(), "route", "add", "default", "via", gw.String())
	ns.MustRun(t, "ip", "neigh", "replace", gw.String(), "lladdr", ifaceMAC(t, l.rt, rtEnd), "dev", nodeEnd, "nud", "permanent")
	l.rt.MustRun(t, "ip", "neigh", "replace", addr.String(), "lladdr", ifaceMAC(t, ns, nodeEnd), "dev", rtEnd, "nud", "permanent")
	sysctl(t, ns, "net.ipv4.conf.all.forwarding=0", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf."+nodeEnd+".rp_filter=0", "net.ipv6.conf.all.forwarding=0")
	passXDP(t, l.rt, rtEnd)

	n := &labNode{name: name, ns: ns, ifname: nodeEnd, addr: addr}
	opts := Options{
		Interface: nodeEnd,
		Attach:    AttachNative,
		PinPath:   netnstest.BPFFS(t) + "/vipd",
		Seed:      l.seed,
	}
	if addr.Is4() {
		opts.Local4 = addr
	} else {
		opts.Local6 = addr
	}
	err := ns.Do(func() (err error) {
		n.dp, err = Open(hclog.NewNullLogger().Named(name), opts)
		return err
	})
	if err != nil {
		t.Fatalf("opening dataplane of %s: %v", name, err)
	}
	for k, want := range map[string]string{
		"net.ipv4.conf." + nodeEnd + ".forwarding": "0", "net.ipv6.conf." + nodeEnd + ".forwarding": "0",
		"net.ipv4.ip_forward": "0", "net.ipv4.conf.lo.forwarding": "1", "net.ipv6.conf.lo.forwarding": "1",
	} {
		if got := strings.TrimSpace(ns.MustRun(t, "sysctl", "-n", k)); got != want {
			t.Fatalf("%s after Open: %s = %s, want %s", name, k, got, want)
		}
	}
	n.opts = opts
	t.Cleanup(func() { n.dp.Close() })
	return n
}

// nodes lists the director and the backends.
func (l *lab) nodes() []*labNode {
	out := []*labNode{l.dir}
	for _, name := range []string{"be1", "be2", "be3"} {
		if n := l.be[name]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// trustMembers gives every node the lab's nodes as the cluster's members:
// the trust boundary on, as on a real node.
func (l *lab) trustMembers(directors ...netip.Prefix) {
	var members []netip.Addr
	for _, n := range l.nodes() {
		members = append(members, n.addr)
	}
	for _, n := range l.nodes() {
		if err := n.dp.SetTrust(context.Background(), Trust{Members: members, Directors: directors}); err != nil {
			l.t.Fatalf("setting trust on %s: %v", n.name, err)
		}
	}
}

// serve runs a TCP server on the VIP in n's namespace that answers every
// line with its node name.
func (l *lab) serve(n *labNode) {
	t := l.t
	var ln net.Listener
	err := n.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(l.vipAddr, l.port).String())
		return err
	})
	if err != nil {
		t.Fatalf("listening in %s: %v", n.name, err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	// Close the server side too: flows to a backend whose VIP was
	// unbound never deliver the client's FIN.
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := c.Write([]byte(n.name + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// conn is a client connection to the VIP from a chosen source port.
type conn struct {
	sport uint16
	c     net.Conn
	r     *bufio.Reader
}

// dial connects from the client namespace to the VIP from sport.
func (l *lab) dial(sport uint16, timeout time.Duration) (*conn, error) {
	var c net.Conn
	err := l.client.Do(func() (err error) {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: l.clientIP.AsSlice(), Port: int(sport)}}
		c, err = d.Dial("tcp", netip.AddrPortFrom(l.vipAddr, l.port).String())
		return err
	})
	if err != nil {
		return nil, err
	}
	l.t.Cleanup(func() { c.Close() })
	return &conn{sport: sport, c: c, r: bufio.NewReader(c)}, nil
}

// ask sends a line and returns the name of the backend that answered.
func (c *conn) ask() (string, error) {
	if err := c.c.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		return "", err
	}
	if _, err := c.c.Write([]byte("who\n")); err != nil {
		return "", err
	}
	s, err := c.r.ReadString('\n')
	return strings.TrimSpace(s), err
}

// primaryFor is the backend the director's table gives a client flow.
func (l *lab) primaryFor(bs []vip.Backend, sport uint16) string {
	rows, err := BuildSharedTable(l.seed, bs)
	if err != nil {
		l.t.Fatal(err)
	}
	h := flowHash(uint32(l.seed^l.seed>>32), l.clientIP, l.vipAddr, sport, l.port, 6)
	return bs[rows[h&(TableRows-1)].Primary].Name
}

// ports returns n fresh client source ports whose flows the table built
// from bs maps to backend want.
func (l *lab) ports(bs []vip.Backend, want string, n int) []uint16 {
	var out []uint16
	for len(out) < n {
		p := uint16(l.nextPort)
		l.nextPort++
		if l.primaryFor(bs, p) == want {
			out = append(out, p)
		}
	}
	return out
}

func snmpForwarded(t *testing.T, ns *netnstest.NS, v6 bool) uint64 {
	t.Helper()
	if v6 {
		for _, line := range strings.Split(ns.MustRun(t, "cat", "/proc/net/snmp6"), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Ip6OutForwDatagrams" {
				v, _ := strconv.ParseUint(f[1], 10, 64)
				return v
			}
		}
		t.Fatal("no Ip6OutForwDatagrams in /proc/net/snmp6")
	}
	lines := strings.Split(ns.MustRun(t, "cat", "/proc/net/snmp"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "Ip: Forwarding") {
			continue
		}
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, k := range keys {
			if k == "ForwDatagrams" && j < len(vals) {
				v, _ := strconv.ParseUint(vals[j], 10, 64)
				return v
			}
		}
	}
	t.Fatal("no Ip ForwDatagrams in /proc/net/snmp")
	return 0
}

func mustStats(t *testing.T, n *labNode) map[string]uint64 {
	t.Helper()
	s, err := n.dp.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNamespaceTCP runs real TCP through a director and two backends:
// flows land on the backend the table says; a draining backend keeps its
// established connections through second chance while new ones go to the
// other; a VIP unbound at a backend that still receives traffic is dropped
// by the loop guard, not forwarded, even once ip_forward is turned on.
// Nodes run with forwarding off except on lo (the fib lookup device).
func TestNamespaceTCP(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) { testNamespaceTCP(t, false) })
	t.Run("ipv6", func(t *testing.T) { testNamespaceTCP(t, true) })
}

// newLab builds client, rt, the director and the named backends (VIP on
// lo, in the bound set, serving TCP), with every node trusting the others
// as the cluster's members.
func newLab(t *testing.T, v6 bool, backends ...string) *lab {
	ctx := context.Background()
	l := &lab{
		t:        t,
		vipAddr:  netip.MustParseAddr("198.51.100.80"),
		port:     uint16(20000 + rand.IntN(20000)),
		seed:     rand.Uint64(),
		nextPort: 30000 + rand.IntN(20000),
		be:       map[string]*labNode{},
		v6:       v6,
	}
	if v6 {
		l.vipAddr = netip.MustParseAddr("2001:db8:100::80")
	}
	l.rt = netnstest.New(t, "rt")
	l.client = netnstest.New(t, "cl")
	sysctl(t, l.rt, "net.ipv4.conf.all.forwarding=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv6.conf.all.forwarding=1")
	rtEnd, clEnd := netnstest.Veth(t, l.rt, l.client)
	l.clientIf, l.rtClientIf = clEnd, rtEnd
	gw, client := l.subnet(1)
	l.clientIP = client
	l.addrAdd(l.rt, gw, rtEnd)
	l.addrAdd(l.client, client, clEnd)
	l.client.MustRun(t, "ip", l.fam(), "route", "add", "default", "via", gw.String())
	// A veth hands the forwarded skb on with a partial checksum (offload);
	// XDP sees only the pseudo-header sum and the backend would drop the
	// decapsulated segment. Real NICs put full checksums on the wire:
	// have the client compute them.
	l.client.MustRun(t, "ethtool", "-K", clEnd, "tx", "off")

	l.dir = l.addNode("dir", 2)
	l.rt.MustRun(t, "ip", l.fam(), "route", "add", netip.PrefixFrom(l.vipAddr, l.vipAddr.BitLen()).String(), "via", l.dir.addr.String())
	for i, name := range backends {
		n := l.addNode(name, 3+i)
		l.addrAdd(n.ns, l.vipAddr, "lo")
		if err := n.dp.SetBound(ctx, []netip.Addr{l.vipAddr}); err != nil {
			t.Fatal(err)
		}
		l.serve(n)
		l.be[name] = n
	}
	l.trustMembers()
	return l
}

func testNamespaceTCP(t *testing.T, v6 bool) {
	ctx := context.Background()
	l := newLab(t, v6, "be1", "be2")
	be1, be2 := l.be["be1"], l.be["be2"]
	prog := vip.ProgramSpec{
		Addr:     l.vipAddr,
		Services: []vip.Service{{Proto: 6, Port: l.port}},
		Backends: []vip.Backend{be1.backend(), be2.backend()},
	}
	if err := l.dir.dp.Program(ctx, prog); err != nil {
		t.Fatal(err)
	}

	// 1. Each flow reaches the backend its table row names.
	conns := map[string][]*conn{}
	for _, name := range []string{"be1", "be2"} {
		for _, sport := range l.ports(prog.Backends, name, 3) {
			c, err := l.dial(sport, 3*time.Second)
			if err != nil {
				o1, _ := l.be[name].ns.Run("nstat", "-az")
				o2, _ := l.client.Run("nstat", "-az")
				o3, _ := l.rt.Run("nstat", "-az")
				t.Fatalf("dial from port %d (table: %s): %v\ndirector stats %v\n%s stats %v\nBE %s\nCLIENT %s\nRT %s", sport, name, err,
					mustStats(t, l.dir), name, mustStats(t, l.be[name]), o1, o2, o3)
			}
			got, err := c.ask()
			if err != nil || got != name {
				t.Fatalf("port %d: answered by %q (%v), table says %s", sport, got, err, name)
			}
			conns[name] = append(conns[name], c)
		}
	}
	if s := mustStats(t, l.dir); s["director_tx"] == 0 {
		t.Errorf("director stats show no encapsulated packet: %v", s)
	}

	// Upgrade restart of the director: with vipd gone the pinned program
	// keeps forwarding; the new one adopts the link and maps without a
	// flush, and established flows never notice.
	if err := l.dir.dp.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"be1", "be2"} {
		if got, err := conns[name][0].ask(); err != nil || got != name {
			t.Errorf("%s flow with the director's vipd stopped: answered by %q (%v)", name, got, err)
		}
	}
	err := l.dir.ns.Do(func() (err error) {
		l.dir.dp, err = Open(hclog.NewNullLogger(), l.dir.opts)
		return err
	})
	if err != nil {
		t.Fatalf("reopening the director: %v", err)
	}
	if got, err := l.dir.dp.Programmed(ctx); err != nil || len(got) != 1 || got[0] != l.vipAddr {
		t.Errorf("director after restart: Programmed = %v, %v; want [%s]", got, err, l.vipAddr)
	}
	for _, name := range []string{"be1", "be2"} {
		for _, c := range conns[name] {
			if got, err := c.ask(); err != nil || got != name {
				t.Errorf("%s flow from port %d after director restart: answered by %q (%v)", name, c.sport, got, err)
			}
		}
	}

	// 2. be1 drains: only second hop. Its established connections keep
	// working through second chance at be2; new flows all go to be2.
	fwdBefore := mustStats(t, be2)["backend_forward_tx"]
	prog.Backends[0].Role = vip.RoleSecondary
	if err := l.dir.dp.Program(ctx, prog); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns["be1"] {
		if got, err := c.ask(); err != nil || got != "be1" {
			t.Errorf("established be1 flow from port %d after drain: answered by %q (%v)", c.sport, got, err)
		}
	}
	if fwd := mustStats(t, be2)["backend_forward_tx"]; fwd <= fwdBefore {
		t.Errorf("be2 forwarded no packet by second chance (backend_forward_tx %d -> %d)", fwdBefore, fwd)
	}
	for _, c := range conns["be2"] {
		if got, err := c.ask(); err != nil || got != "be2" {
			t.Errorf("be2 flow from port %d after drain: answered by %q (%v)", c.sport, got, err)
		}
	}
	// Ports that mapped to be1 before the drain now open on be2.
	for _, sport := range l.ports([]vip.Backend{be1.backend(), be2.backend()}, "be1", 3) {
		c, err := l.dial(sport, 3*time.Second)
		if err != nil {
			t.Fatalf("new flow from port %d during drain: %v", sport, err)
		}
		if got, err := c.ask(); err != nil || got != "be2" {
			t.Errorf("new flow from port %d during drain: answered by %q (%v), want be2", sport, got, err)
		}
	}

	// 3. be1 back to primary, then the VIP is removed from be1 (lo and
	// the bound set) while the director still sends it flows, with
	// ip_forward turned on (the misconfiguration of docs/field-notes.md, note 3): the
	// loop guard drops them; the kernel forwards none.
	prog.Backends[0].Role = vip.RolePrimary
	if err := l.dir.dp.Program(ctx, prog); err != nil {
		t.Fatal(err)
	}
	sysctl(t, be1.ns, "net.ipv4.conf.all.forwarding=1", "net.ipv6.conf.all.forwarding=1")
	be1.ns.MustRun(t, "ip", l.fam(), "addr", "del", netip.PrefixFrom(l.vipAddr, l.vipAddr.BitLen()).String(), "dev", "lo")
	if err := be1.dp.SetBound(ctx, nil); err != nil {
		t.Fatal(err)
	}
	guardBefore := mustStats(t, be1)["drop_loop_guard"]
	fwdKernelBefore := snmpForwarded(t, be1.ns, l.v6)
	fwdXDPBefore := mustStats(t, be1)["backend_forward_tx"]
	for _, sport := range l.ports(prog.Backends, "be1", 2) {
		c, err := l.dial(sport, 1500*time.Millisecond)
		if err == nil {
			got, _ := c.ask()
			t.Errorf("flow from port %d to unbound be1 connected (answered by %q)", sport, got)
		} else if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
			t.Logf("dial from port %d: %v", sport, err)
		}
	}
	st := mustStats(t, be1)
	if st["drop_loop_guard"] <= guardBefore {
		t.Errorf("be1 drop_loop_guard %d -> %d: want drops", guardBefore, st["drop_loop_guard"])
	}
	if st["backend_forward_tx"] != fwdXDPBefore {
		t.Errorf("be1 forwarded unbound VIP packets by XDP (%d -> %d)", fwdXDPBefore, st["backend_forward_tx"])
	}
	if fwd := snmpForwarded(t, be1.ns, l.v6); fwd != fwdKernelBefore {
		t.Errorf("be1 kernel forwarded %d datagrams with the VIP unbound", fwd-fwdKernelBefore)
	}
	t.Logf("be1 loop-guard drops: %d; director %v", st["drop_loop_guard"]-guardBefore, mustStats(t, l.dir))
}
