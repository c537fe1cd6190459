//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/vip"
)

// snmpCounter reads a counter of /proc/net/snmp ("Ip", "ReasmOKs") or
// /proc/net/snmp6 ("Ip6ReasmOKs") in ns.
func snmpCounter(t *testing.T, l *lab, n *labNode, name string) uint64 {
	t.Helper()
	if l.v6 {
		for _, line := range strings.Split(n.ns.MustRun(t, "cat", "/proc/net/snmp6"), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Ip6"+name {
				v, _ := strconv.ParseUint(f[1], 10, 64)
				return v
			}
		}
		t.Fatalf("no Ip6%s in /proc/net/snmp6", name)
	}
	lines := strings.Split(n.ns.MustRun(t, "cat", "/proc/net/snmp"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "Ip: Forwarding") {
			continue
		}
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, k := range keys {
			if k == name && j < len(vals) {
				v, _ := strconv.ParseUint(vals[j], 10, 64)
				return v
			}
		}
	}
	t.Fatalf("no Ip %s in /proc/net/snmp", name)
	return 0
}

// serveUDP answers every datagram to the VIP's port on n with "<node>
// <length>".
func (l *lab) serveUDP(n *labNode) {
	t := l.t
	var c *net.UDPConn
	err := n.ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.vipAddr, l.port)))
		return err
	})
	if err != nil {
		t.Fatalf("listening for udp in %s: %v", n.name, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { c.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			k, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort([]byte(fmt.Sprintf("%s %d", n.name, k)), from)
		}
	}()
}

// TestNamespaceFragments: UDP datagrams to a port-specific VIP, each in
// three fragments, from many client addresses (fragments hash on addresses
// and protocol, so the address picks the row): every datagram is
// reassembled whole at exactly the backend its table row names, and no
// fragment strays to the other backend or the director's stack.
func TestNamespaceFragments(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) { testNamespaceFragments(t, false) })
	t.Run("ipv6", func(t *testing.T) { testNamespaceFragments(t, true) })
}

func testNamespaceFragments(t *testing.T, v6 bool) {
	ctx := context.Background()
	l := newLab(t, v6, "be1", "be2")
	be1, be2 := l.be["be1"], l.be["be2"]
	for _, n := range []*labNode{be1, be2} {
		l.serveUDP(n)
	}
	prog := vip.ProgramSpec{
		Addr:     l.vipAddr,
		Services: []vip.Service{{Proto: 17, Port: l.port}, {Proto: 6, Port: l.port}},
		Backends: []vip.Backend{be1.backend(), be2.backend()},
	}
	if err := l.dir.dp.Program(ctx, prog); err != nil {
		t.Fatal(err)
	}
	// The client's MTU makes three fragments of each datagram, small
	// enough to be encapsulated without exceeding the underlay's 1500.
	mtu, size := 1000, 2400
	if v6 {
		mtu, size = 1280, 3000
	}
	l.client.MustRun(t, "ip", "link", "set", l.clientIf, "mtu", strconv.Itoa(mtu))
	var sources []netip.Addr
	for i := 10; i < 42; i++ {
		a := netip.MustParseAddr(fmt.Sprintf("10.1.0.%d", i))
		if v6 {
			a = netip.MustParseAddr(fmt.Sprintf("fd00:1::%x", i))
		}
		l.addrAdd(l.client, a, l.clientIf)
		sources = append(sources, a)
	}
	rows, err := BuildSharedTable(l.seed, prog.Backends)
	if err != nil {
		t.Fatal(err)
	}
	reasm := func(n *labNode) [2]uint64 {
		return [2]uint64{snmpCounter(t, l, n, "ReasmReqds"), snmpCounter(t, l, n, "ReasmOKs")}
	}
	before := map[string][2]uint64{"be1": reasm(be1), "be2": reasm(be2), "dir": reasm(l.dir)}
	got := map[string]int{}
	for _, src := range sources {
		h := flowHash(uint32(l.seed^l.seed>>32), src, l.vipAddr, 0, 0, 17)
		want := prog.Backends[rows[h&(TableRows-1)].Primary].Name
		var reply string
		err := l.client.Do(func() error {
			c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.vipAddr, l.port)))
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Write(make([]byte, size)); err != nil {
				return err
			}
			if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
				return err
			}
			buf := make([]byte, 100)
			k, err := c.Read(buf)
			reply = string(buf[:k])
			return err
		})
		if err != nil {
			t.Fatalf("datagram from %s: %v; director %v", src, err, mustStats(t, l.dir))
		}
		if wantReply := fmt.Sprintf("%s %d", want, size); reply != wantReply {
			t.Errorf("datagram from %s: reply %q, want %q (its row)", src, reply, wantReply)
		}
		got[want]++
	}
	if got["be1"] == 0 || got["be2"] == 0 {
		t.Errorf("all %d source addresses hash to one backend (%v): the test proves nothing about rows", len(sources), got)
	}
	// Exactly three fragments a datagram, each at the backend that
	// reassembled it; none at the other backend or the director.
	for _, n := range []*labNode{be1, be2, l.dir} {
		after := reasm(n)
		reqds, oks := after[0]-before[n.name][0], after[1]-before[n.name][1]
		if oks != uint64(got[n.name]) || reqds != 3*oks {
			t.Errorf("%s reassembled %d datagrams from %d fragments, want %d from %d", n.name, oks, reqds, got[n.name], 3*got[n.name])
		}
	}
	if s := mustStats(t, l.dir); s["pass_fragment"] != 0 || s["director_tx"] < uint64(3*len(sources)) {
		t.Errorf("director: %d fragments passed to its stack, %d encapsulated, want 0 and >= %d", s["pass_fragment"], s["director_tx"], 3*len(sources))
	}
}

// sendGUE sends a UDP datagram with payload from the client to node's GUE
// port: how anyone on the network can try GUE on a node.
func (l *lab) sendGUE(t *testing.T, n *labNode, payload []byte) {
	t.Helper()
	err := l.client.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.addr, DefaultGUEPort)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatalf("sending gue to %s: %v", n.name, err)
	}
}

// waitStat waits until counter name of n reaches at least want.
func waitStat(t *testing.T, n *labNode, name string, want uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := mustStats(t, n)[name]
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNamespaceTrustBoundary sends issue 11's crafted GUE from the client
// namespace to a backend: each is dropped and counted by the reason, never
// forwarded or decapsulated, and nothing reaches the other backend. With
// the client's prefix allowed as a director, the checks behind the source
// check are tried the same way.
func TestNamespaceTrustBoundary(t *testing.T) {
	ctx := context.Background()
	l := newLab(t, false, "be1", "be2")
	be1, be2 := l.be["be1"], l.be["be2"]
	prog := vip.ProgramSpec{
		Addr:     l.vipAddr,
		Services: []vip.Service{{Proto: 6, Port: l.port}},
		Backends: []vip.Backend{be1.backend(), be2.backend()},
	}
	if err := l.dir.dp.Program(ctx, prog); err != nil {
		t.Fatal(err)
	}
	outside := netip.MustParseAddr("10.9.9.9")
	gue := func(next uint8, hops []netip.Addr, inner []byte) []byte {
		return append(glbGUE(true, next, hops...), inner[l2Len(inner):]...)
	}
	ackIn := tcpFrame(t, 0, l.clientIP, 41000, l.vipAddr, l.port, ack)
	spoofed := tcpFrame(t, 0, netip.MustParseAddr("203.0.113.5"), 41002, l.vipAddr, l.port, syn)
	watched := []string{"backend_decap", "backend_forward_tx", "backend_forward_redirect", "backend_forward_no_neigh"}

	type craft struct {
		name    string
		payload []byte
		reason  string
	}
	run := func(t *testing.T, cases []craft) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				const n = 5
				b1, b2 := mustStats(t, be1), mustStats(t, be2)
				for range n {
					l.sendGUE(t, be1, c.payload)
				}
				if got := waitStat(t, be1, c.reason, b1[c.reason]+n); got != b1[c.reason]+n {
					t.Errorf("be1 %s %d -> %d, want +%d", c.reason, b1[c.reason], got, n)
				}
				a1, a2 := mustStats(t, be1), mustStats(t, be2)
				for _, k := range watched {
					if a1[k] != b1[k] {
						t.Errorf("be1 %s %d -> %d: the crafted packet got through", k, b1[k], a1[k])
					}
					if a2[k] != b2[k] {
						t.Errorf("be2 %s %d -> %d: the crafted packet reached the other backend", k, b2[k], a2[k])
					}
				}
			})
		}
	}
	// From the client, nothing gets past the source check.
	run(t, []craft{
		{"hops [node, other node]", gue(0, []netip.Addr{be1.addr, be2.addr}, ackIn), "drop_gue_untrusted_source"},
		{"hop outside the cluster", gue(0, []netip.Addr{outside}, ackIn), "drop_gue_untrusted_source"},
		{"preset next_hop", gue(1, []netip.Addr{be1.addr, be2.addr}, ackIn), "drop_gue_untrusted_source"},
		{"[n1,n3,n1,n3]", gue(0, []netip.Addr{l.dir.addr, be2.addr, l.dir.addr, be2.addr}, ackIn), "drop_gue_untrusted_source"},
		{"spoofed inner source", gue(0, nil, spoofed), "drop_gue_untrusted_source"},
	})

	// The client's prefix allowed as a director: a well-formed packet is
	// decapsulated (the control), the rest still dropped, by reason.
	l.trustMembers(netip.MustParsePrefix("10.1.0.0/24"))
	t.Run("allowed director, well-formed: decapsulated", func(t *testing.T) {
		// UDP to a port nobody serves: nothing comes back through the
		// director to count twice.
		before := mustStats(t, be1)["backend_decap"]
		l.sendGUE(t, be1, gue(0, []netip.Addr{be2.addr}, udpFrame(t, l.clientIP, 41003, l.vipAddr, l.port, []byte("q"))))
		if got := waitStat(t, be1, "backend_decap", before+1); got != before+1 {
			t.Errorf("be1 backend_decap %d -> %d, want +1", before, got)
		}
	})
	run(t, []craft{
		{"director: hop outside the cluster", gue(0, []netip.Addr{outside}, ackIn), "drop_gue_hop_not_member"},
		{"director: itself as a hop", gue(0, []netip.Addr{l.clientIP}, ackIn), "drop_gue_hop_not_member"},
		{"director: preset next_hop", gue(1, []netip.Addr{be1.addr}, ackIn), "drop_gue_bad_next_hop"},
		{"director: [n1,n3,n1,n3]", gue(0, []netip.Addr{l.dir.addr, be2.addr, l.dir.addr, be2.addr}, ackIn), "drop_gue_too_many_hops"},
		{"director: two alternates", gue(0, []netip.Addr{be2.addr, l.dir.addr}, ackIn), "drop_gue_too_many_hops"},
	})
}

// TestNamespacePathMTU: a TCP upload whose full-size segments no longer fit
// the underlay once encapsulated. The director answers them with ICMP
// "fragmentation needed" / "packet too big" for the MTU less the
// encapsulation; the client's PMTU discovery converges and the upload
// completes.
func TestNamespacePathMTU(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) { testNamespacePathMTU(t, false) })
	t.Run("ipv6", func(t *testing.T) { testNamespacePathMTU(t, true) })
}

func testNamespacePathMTU(t *testing.T, v6 bool) {
	ctx := context.Background()
	l := newLab(t, v6, "be1")
	be1 := l.be["be1"]
	prog := vip.ProgramSpec{Addr: l.vipAddr, Services: []vip.Service{{Proto: 6, Port: l.port}}, Backends: []vip.Backend{be1.backend()}}
	if err := l.dir.dp.Program(ctx, prog); err != nil {
		t.Fatal(err)
	}
	// Outer IPv4 + UDP + GUE (no alternate: one backend); IPv6 likewise.
	wantMTU := 1500 - 20 - 8 - 8
	if v6 {
		wantMTU = 1500 - 40 - 8 - 8
	}
	c, err := l.dial(uint16(l.nextPort), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.c.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 512<<10)
	for i := range data {
		data[i] = 'x'
	}
	data[len(data)-1] = '\n'
	if _, err := c.c.Write(data); err != nil {
		t.Fatalf("upload: %v; director %v", err, mustStats(t, l.dir))
	}
	reply, err := c.r.ReadString('\n')
	if err != nil || strings.TrimSpace(reply) != "be1" {
		t.Fatalf("upload: reply %q (%v) after %v; director %v", reply, err, time.Since(start), mustStats(t, l.dir))
	}
	s := mustStats(t, l.dir)
	if s["director_icmp_too_big"] == 0 {
		t.Errorf("director answered no packet as too big: %v", s)
	}
	route := l.client.MustRun(t, "ip", l.fam(), "route", "get", l.vipAddr.String())
	if !strings.Contains(route, "mtu "+strconv.Itoa(wantMTU)) {
		t.Errorf("client's route to the VIP after the upload: %q, want a learnt mtu %d", strings.TrimSpace(route), wantMTU)
	}
	t.Logf("512 KiB uploaded in %v; director: %d too-big answers, %d encapsulated", time.Since(start),
		s["director_icmp_too_big"], s["director_tx"])
}

// TestNamespaceProbe: data-path probes between two nodes, answered by the
// target's XDP program: they succeed both ways and as a self-check through
// a peer, fail from outside the cluster, fail while UDP to the GUE port is
// dropped on the way (nftables in rt, when nft is installed) or the path's
// MTU is below the probe's size, and succeed again once that is undone.
func TestNamespaceProbe(t *testing.T) {
	l := newLab(t, false, "be1")
	a, b := l.dir, l.be["be1"]
	// The probes leave the nodes' own stacks: full UDP checksums on the
	// wire, as a real NIC puts them (a veth leaves them partial).
	for _, n := range []*labNode{a, b} {
		n.ns.MustRun(t, "ethtool", "-K", n.ifname, "tx", "off")
	}
	probe := func(from *labNode, spec ProbeSpec) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		var rtt time.Duration
		err := from.ns.Do(func() (err error) {
			rtt, err = Probe(ctx, spec)
			return err
		})
		return rtt, err
	}
	ok := func(t *testing.T, from *labNode, spec ProbeSpec) {
		t.Helper()
		rtt, err := probe(from, spec)
		if err != nil {
			t.Fatalf("probe %s -> %s: %v; target %v", from.name, spec.Target, err, mustStats(t, b))
		}
		t.Logf("probe %s -> %s (%d bytes): %v", from.name, spec.Target, spec.Size, rtt)
	}
	fails := func(t *testing.T, from *labNode, spec ProbeSpec) {
		t.Helper()
		if _, err := probe(from, spec); !errors.Is(err, ErrNoProbeAnswer) {
			t.Errorf("probe %s -> %s: %v, want %v", from.name, spec.Target, err, ErrNoProbeAnswer)
		}
	}
	toB := ProbeSpec{Source: a.addr, Target: netip.AddrPortFrom(b.addr, 0), Size: 1400}
	toA := ProbeSpec{Source: b.addr, Target: netip.AddrPortFrom(a.addr, 0), Size: 1400}

	before := mustStats(t, b)["probe_reply"]
	ok(t, a, toB)
	ok(t, b, toA)
	if got := mustStats(t, b)["probe_reply"]; got != before+1 {
		t.Errorf("be1 probe_reply %d -> %d, want +1", before, got)
	}
	// A self-check through a peer: the answer comes back to this node's
	// GUE port, the way GUE enters it, and its program passes it up.
	passBefore := mustStats(t, a)["probe_pass"]
	ok(t, a, ProbeSpec{Source: a.addr, SourcePort: DefaultGUEPort, Target: netip.AddrPortFrom(b.addr, 0)})
	if got := mustStats(t, a)["probe_pass"]; got != passBefore+1 {
		t.Errorf("dir probe_pass %d -> %d, want +1", passBefore, got)
	}
	// From outside the cluster: not answered.
	untrusted := mustStats(t, b)["drop_gue_untrusted_source"]
	fails(t, &labNode{name: "client", ns: l.client}, ProbeSpec{Target: netip.AddrPortFrom(b.addr, 0)})
	if got := mustStats(t, b)["drop_gue_untrusted_source"]; got != untrusted+1 {
		t.Errorf("be1 drop_gue_untrusted_source %d -> %d, want +1", untrusted, got)
	}

	t.Run("mtu", func(t *testing.T) {
		link := l.rtLink(b)
		l.rt.MustRun(t, "ip", "link", "set", link, "mtu", "1300")
		fails(t, a, toB)
		ok(t, a, ProbeSpec{Source: a.addr, Target: toB.Target, Size: 1200})
		l.rt.MustRun(t, "ip", "link", "set", link, "mtu", "1500")
		ok(t, a, toB)
	})
	t.Run("nftables", func(t *testing.T) {
		if _, err := exec.LookPath("nft"); err != nil {
			t.Fatalf("nft is not installed (make deps installs nftables): %v", err)
		}
		rule := fmt.Sprintf("add rule inet vipdtest gue ip daddr %s udp dport %d drop", b.addr, DefaultGUEPort)
		for _, cmd := range []string{"add table inet vipdtest", "add chain inet vipdtest gue { type filter hook forward priority 0 ; }", rule} {
			l.rt.MustRun(t, append([]string{"nft"}, strings.Fields(cmd)...)...)
		}
		fails(t, a, toB)
		ok(t, b, toA) // the other direction's GUE port is open
		l.rt.MustRun(t, "nft", "delete", "table", "inet", "vipdtest")
		ok(t, a, toB)
	})
}

// rtLink is rt's veth towards node n.
func (l *lab) rtLink(n *labNode) string {
	gw, _ := l.subnet(int(n.addr.As4()[1]))
	for _, line := range strings.Split(l.rt.MustRun(l.t, "ip", "-o", "-4", "addr", "show"), "\n") {
		if f := strings.Fields(line); len(f) > 3 && strings.HasPrefix(f[3], gw.String()+"/") {
			return strings.TrimSuffix(f[1], "@")
		}
	}
	l.t.Fatalf("no rt link to %s", n.name)
	return ""
}

// TestNamespaceProbeConcurrent: probes to two members at once from the
// GUE port (the prober's way: SO_REUSEPORT, connected sockets) each get
// their own answer, with checksum offload left on (a veth's partial
// checksums) since they are sent with UDP checksum 0, as GUE is.
func TestNamespaceProbeConcurrent(t *testing.T) {
	l := newLab(t, false, "be1", "be2")
	a := l.dir
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for round := range 3 {
		for i, b := range []*labNode{l.be["be1"], l.be["be2"]} {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				defer cancel()
				errs[i] = a.ns.Do(func() error {
					_, err := Probe(ctx, ProbeSpec{Source: a.addr, SourcePort: DefaultGUEPort, Target: netip.AddrPortFrom(b.addr, 0),
						Size: 1500, ZeroChecksum: true})
					return err
				})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: probe to be%d: %v", round, i+1, err)
			}
		}
	}
}
