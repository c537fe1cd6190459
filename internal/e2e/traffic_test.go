package e2e

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vipd/vipd/examples/lab/labconf"
)

// broken is one broken connection as `labtool load -events` writes it.
type broken struct {
	Target   string    `json:"target"`
	Port     int       `json:"port"`
	Backend  string    `json:"backend"`
	Start    time.Time `json:"start"`
	LastOK   time.Time `json:"last_ok"`
	At       time.Time `json:"at"`
	Op       string    `json:"op"`
	Error    string    `json:"error"`
	Switched bool      `json:"switched"`
}

func (b broken) vip() netip.Addr {
	ap, err := netip.ParseAddrPort(b.Target)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// loadKind is one of the two kinds of traffic the lab tests run per VIP.
type loadKind struct {
	name     string
	conns    int
	lifetime time.Duration
}

var (
	// longLived: connections that exchange a line every 100 ms for 2 s,
	// shorter than the lab's drain timeout (labconf.FastTimers), so a
	// drain or a removal lets them finish.
	longLived = loadKind{name: "long", conns: 4, lifetime: 2 * time.Second}
	// newConns: a stream of new connections (a few exchanges each).
	newConns = loadKind{name: "new", conns: 2, lifetime: 250 * time.Millisecond}
)

// loadProc is one `labtool load` in the client namespace.
// loadStarts numbers the loads started, for their ready files.
var loadStarts atomic.Int64

type loadProc struct {
	vip    netip.Addr
	kind   loadKind
	cmd    *exec.Cmd
	out    strings.Builder
	events string
	done   chan error
}

// startLoad runs kind's traffic to vip:80. slot picks the client port range
// (5000 ports per slot from 20000), so that at any time a (VIP, client port)
// names one connection, and the router's capture can be matched to it.
func (l *lab) startLoad(vip netip.Addr, kind loadKind, slot int) *loadProc {
	l.t.Helper()
	lo := 20000 + slot*5000
	p := &loadProc{vip: vip, kind: kind, events: filepath.Join(l.run, fmt.Sprintf("load-%s-%s.jsonl", vip, kind.name)), done: make(chan error, 1)}
	ready := filepath.Join(l.run, fmt.Sprintf("load-%s-%s-%d.ready", vip, kind.name, loadStarts.Add(1)))
	p.cmd = l.exec("client", filepath.Join(l.bin, "labtool"), "load", "-target", netip.AddrPortFrom(vip, 80).String(),
		"-conns", fmt.Sprint(kind.conns), "-lifetime", kind.lifetime.String(), "-duration", "1h", "-progress", "0", "-json",
		"-ports", fmt.Sprintf("%d-%d", lo, lo+4999), "-events", p.events, "-ready", ready)
	p.cmd.Stdout = &p.out
	if err := p.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	l.t.Cleanup(func() { p.cmd.Process.Kill() })
	// A SIGUSR1 before labtool handles it would kill it: a step may end
	// the load right away (a VIP removed by the first step).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return p
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("load to %s (%s) not ready within 10s", vip, kind.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finish asks the load to end cleanly (no new connection; each open one
// closes after its current exchange) and returns its result.
func (p *loadProc) finish() (loadResult, error) { return p.end(syscall.SIGUSR1) }

// stop ends the load at once (connections in the middle of an exchange
// finish it) and returns its result.
func (p *loadProc) stop() (loadResult, error) { return p.end(syscall.SIGINT) }

func (p *loadProc) end(sig syscall.Signal) (loadResult, error) {
	var res loadResult
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		if err != nil {
			return res, fmt.Errorf("load to %s (%s): %w", p.vip, p.kind.name, err)
		}
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		return res, fmt.Errorf("load to %s (%s) did not end within 10s of %v", p.vip, p.kind.name, sig)
	}
	if err := json.Unmarshal([]byte(p.out.String()), &res); err != nil {
		return res, fmt.Errorf("decoding the load result %q: %w", p.out.String(), err)
	}
	return res, nil
}

// readBroken reads every -events file of the lab's loads.
func (l *lab) readBroken() ([]broken, error) {
	files, _ := filepath.Glob(filepath.Join(l.run, "load-*.jsonl"))
	var out []broken
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line == "" {
				continue
			}
			var b broken
			if err := json.Unmarshal([]byte(line), &b); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// capture is tcpdump on every node's switch port (the sw namespace, where
// each node's segment meets both routers): what the routers send to each
// node for a VIP (the node is then that flow's director), the GUE they
// route between nodes (the hop is a backend), the answers they receive from
// each node for a VIP (the node is the backend), and VIP packets coming back
// from a node (looped).
type capture struct {
	cmd    *exec.Cmd
	file   string
	stderr string
}

// vipNet covers every VIP the lab tests use.
var vipNet = netip.MustParsePrefix("198.51.100.0/24")

func (l *lab) startCapture() *capture {
	l.t.Helper()
	c := &capture{file: filepath.Join(l.run, "switch.pcap"), stderr: filepath.Join(l.run, "switch-tcpdump.txt")}
	c.cmd = l.exec("sw", "tcpdump", "-i", "any", "-y", "LINUX_SLL2", "-s", "128", "-U", "-w", c.file,
		fmt.Sprintf("net %s or udp dst port %d", vipNet, labconf.GUEPort))
	errf, err := os.Create(c.stderr)
	if err != nil {
		l.t.Fatal(err)
	}
	c.cmd.Stderr = errf
	if err := c.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	// tcpdump attaching: it says so on stderr.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(c.stderr); strings.Contains(string(data), "listening on") {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("tcpdump on the switch did not start")
	return c
}

// stopCapture ends tcpdump and reads what it captured.
func (l *lab) stopCapture(c *capture) (*flows, error) {
	c.cmd.Process.Signal(syscall.SIGINT)
	c.cmd.Wait()
	ifaces, routed, err := l.switchPorts()
	if err != nil {
		return nil, err
	}
	return readCapture(c.file, ifaces, routed)
}

// switchPorts maps the interface indexes of the nodes' switch ports to
// the node behind each, and those of the routers' ports to the node whose
// segment they are on (the bridges are left out). A packet a router sends
// toward a node is seen on the router's port even when the node's own port
// cannot take it (its link down).
func (l *lab) switchPorts() (nodes, routed map[int]string, err error) {
	h, err := l.handle("sw")
	if err != nil {
		return nil, nil, err
	}
	links, err := h.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("listing the switch's links: %w", err)
	}
	nodes, routed = map[int]string{}, map[int]string{}
	for _, lk := range links {
		name := lk.Attrs().Name
		for _, n := range nodeNames {
			seg := strings.TrimSuffix(switchPort(n), "n") // "s2-"
			switch {
			case name == switchPort(n):
				nodes[lk.Attrs().Index] = n
			case strings.HasPrefix(name, seg+"r"):
				routed[lk.Attrs().Index] = n
			}
		}
	}
	return nodes, routed, nil
}

// flowKey names a client connection: the VIP and the client's port.
type flowKey struct {
	vip  netip.Addr
	port uint16
}

// hop is one sighting of a flow at the router.
type hop struct {
	at   time.Time
	node string
	// what: "routed" (a router sent the client's packet toward node's
	// segment), "director" (node's port took the client's packet),
	// "encap" (node sent GUE for the flow), "backend" (GUE for the flow
	// was addressed to node), "answer" (node answered).
	what string
}

// flows is what the router saw of each connection, and the looped packets.
type flows struct {
	byKey   map[flowKey][]hop
	packets int
	looped  []string
}

// participants returns the nodes seen on the flow between from and to.
func (f *flows) participants(k flowKey, from, to time.Time) map[string][]string {
	out := map[string][]string{}
	for _, h := range f.byKey[k] {
		if h.at.Before(from) || h.at.After(to) {
			continue
		}
		if !containsStr(out[h.node], h.what) {
			out[h.node] = append(out[h.node], h.what)
		}
	}
	return out
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

const (
	linkTypeSLL2 = 276
	sll2Len      = 20
	pktOutgoing  = 4
	clientAddr   = "203.0.113.2"
)

// readCapture reads a pcap file of LINUX_SLL2 frames (tcpdump -i any -y
// LINUX_SLL2): the interface index and direction of each packet are in its
// link-layer header.
func readCapture(file string, ifaces, routed map[int]string) (*flows, error) {
	fh, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	r := bufio.NewReaderSize(fh, 1<<20)
	var gh [24]byte
	if _, err := io.ReadFull(r, gh[:]); err != nil {
		return nil, fmt.Errorf("reading the pcap header of %s: %w", file, err)
	}
	var bo binary.ByteOrder
	nano := false
	switch binary.LittleEndian.Uint32(gh[:4]) {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nano = binary.LittleEndian, true
	default:
		switch binary.BigEndian.Uint32(gh[:4]) {
		case 0xa1b2c3d4:
			bo = binary.BigEndian
		case 0xa1b23c4d:
			bo, nano = binary.BigEndian, true
		default:
			return nil, fmt.Errorf("%s: not a pcap file", file)
		}
	}
	if lt := bo.Uint32(gh[20:24]); lt != linkTypeSLL2 {
		return nil, fmt.Errorf("%s: link type %d, want LINUX_SLL2 (%d)", file, lt, linkTypeSLL2)
	}
	client := netip.MustParseAddr(clientAddr)
	f := &flows{byKey: map[flowKey][]hop{}}
	var rh [16]byte
	buf := make([]byte, 65536)
	for {
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break // the last record may be cut short by the SIGINT
			}
			return nil, err
		}
		sec, frac, incl := bo.Uint32(rh[0:4]), bo.Uint32(rh[4:8]), bo.Uint32(rh[8:12])
		if int(incl) > len(buf) {
			return nil, fmt.Errorf("%s: a record of %d bytes", file, incl)
		}
		pkt := buf[:incl]
		if _, err := io.ReadFull(r, pkt); err != nil {
			break
		}
		f.packets++
		ns := int64(frac) * 1000
		if nano {
			ns = int64(frac)
		}
		at := time.Unix(int64(sec), ns)
		if len(pkt) < sll2Len+20 || binary.BigEndian.Uint16(pkt[0:2]) != 0x0800 {
			continue
		}
		ifindex := int(binary.BigEndian.Uint32(pkt[4:8]))
		out := pkt[10] == pktOutgoing
		ip := pkt[sll2Len:]
		src, dst, proto, l4, ok := ipv4(ip)
		if !ok {
			continue
		}
		if seg, ok := routed[ifindex]; ok {
			// A router's port: what comes in from the router goes to
			// the segment's node.
			if !out && proto == 6 && vipNet.Contains(dst) && src == client {
				if sport, _, ok := ports(l4); ok {
					k := flowKey{vip: dst, port: sport}
					f.byKey[k] = append(f.byKey[k], hop{at: at, node: seg, what: "routed"})
				}
			}
			continue
		}
		node, ok := ifaces[ifindex]
		if !ok {
			continue // a bridge
		}
		switch {
		case proto == 6 && vipNet.Contains(dst) && src == client:
			sport, _, ok := ports(l4)
			if !ok {
				continue
			}
			if out {
				k := flowKey{vip: dst, port: sport}
				f.byKey[k] = append(f.byKey[k], hop{at: at, node: node, what: "director"})
			} else {
				f.looped = append(f.looped, fmt.Sprintf("%s from %s: %s:%d -> %s", at.Format("15:04:05.000000"), node, src, sport, dst))
			}
		case proto == 6 && vipNet.Contains(src) && dst == client && !out:
			_, dport, ok := ports(l4)
			if ok {
				k := flowKey{vip: src, port: dport}
				f.byKey[k] = append(f.byKey[k], hop{at: at, node: node, what: "answer"})
			}
		case proto == 17 && !out:
			// GUE from a node (a director, or a backend passing a
			// second chance on): its outer destination is the next hop,
			// whether or not the router can still deliver it. UDP, then
			// the 4-byte base header (hlen in its low 5 bits: words of
			// private data and hops), then the inner IP.
			if len(l4) < 12 || 12+4*int(l4[8]&0x1f) > len(l4) {
				continue
			}
			inner := l4[8+4+4*int(l4[8]&0x1f):]
			isrc, idst, iproto, il4, ok := ipv4(inner)
			if !ok || iproto != 6 || isrc != client || !vipNet.Contains(idst) {
				continue
			}
			if sport, _, ok := ports(il4); ok {
				k := flowKey{vip: idst, port: sport}
				f.byKey[k] = append(f.byKey[k], hop{at: at, node: node, what: "encap"}, hop{at: at, node: nodeByAddr(dst), what: "backend"})
			}
		}
	}
	return f, nil
}

func ipv4(b []byte) (src, dst netip.Addr, proto uint8, l4 []byte, ok bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return
	}
	ihl := int(b[0]&0xf) * 4
	if ihl < 20 || len(b) < ihl {
		return
	}
	return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), b[9], b[ihl:], true
}

func ports(l4 []byte) (src, dst uint16, ok bool) {
	if len(l4) < 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4]), true
}

// disruption is a time a node was failed on purpose: every connection it
// served then may break. A drain is recorded too (cause causeDrained), only
// to know when the node could not take new flows: a drain itself must
// break nothing.
type disruption struct {
	cause    string // causeKilled, causeLink, causeService, causeDrained
	node     string
	from, to time.Time
}

// covers reports whether the node was out of the primaries at t.
func (d *disruption) covers(t time.Time) bool {
	return !d.from.After(t) && (d.to.IsZero() || !d.to.Before(t))
}

// disruptions is safe for concurrent use.
type disruptions struct {
	mu   sync.Mutex
	list []*disruption
}

// begin records that node fails for cause from now; end closes it.
func (d *disruptions) begin(cause, node string) *disruption {
	d.mu.Lock()
	defer d.mu.Unlock()
	x := &disruption{cause: cause, node: node, from: time.Now()}
	d.list = append(d.list, x)
	return x
}

// end closes x once the lab has settled again after it.
func (d *disruptions) end(x *disruption) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x.to = time.Now()
}

// The causes of a broken connection.
const (
	causeKilled  = "node killed"
	causeLink    = "link down"
	causeService = "service stopped"
	// causeTwoChanges: the connection opened while its backend was the only
	// one able to take new flows, and at least two others came back before
	// it ended. A row holds two hops (primary and second chance), so the
	// second return can push the backend out of the flow's row: the limit
	// docs/design.md states ("A flow survives one change of its row").
	causeTwoChanges = "two returns while it lived (two-hop limit)"
	unexplained     = "UNEXPLAINED"
	// causeDrained marks a drain in the disruption list; never a cause.
	causeDrained = "node drained"
)

// classified is a broken connection and why it broke.
type classified struct {
	broken
	cause        string
	participants map[string][]string
}

func (c classified) String() string {
	var parts []string
	for n, w := range c.participants {
		parts = append(parts, n+"("+strings.Join(w, ",")+")")
	}
	sort.Strings(parts)
	return fmt.Sprintf("%s port %d, backend %q, seen at the router: %s; last answer %s, failed %s (%s: %s)",
		c.Target, c.Port, c.Backend, strings.Join(parts, " "), c.LastOK.Format("15:04:05.000"), c.At.Format("15:04:05.000"), c.Op, c.Error)
}

// classify names the cause of each broken connection: a disruption of a
// node that served it (its backend, or a node the router's capture shows on
// its path) while it failed, or UNEXPLAINED.
func classify(bs []broken, f *flows, ds []*disruption) []classified {
	var out []classified
	for _, b := range bs {
		if b.Switched {
			continue
		}
		k := flowKey{vip: b.vip(), port: uint16(b.Port)}
		// The path shortly before the last good answer and up to the
		// failure.
		c := classified{broken: b, cause: unexplained, participants: f.participants(k, b.LastOK.Add(-time.Second), b.At)}
		if b.Backend != "" && c.participants[b.Backend] == nil {
			c.participants[b.Backend] = []string{"answered"}
		}
		for _, d := range ds {
			if d.cause == causeDrained {
				continue
			}
			to := d.to
			if to.IsZero() {
				to = time.Now()
			}
			roles := c.participants[d.node]
			if d.cause == causeService {
				// A stopped service fails the node as a backend only:
				// as a director it still forwards.
				roles = slices.DeleteFunc(slices.Clone(roles), func(r string) bool { return r == "routed" || r == "director" || r == "encap" })
			}
			if len(roles) > 0 && !d.from.After(b.At) && !b.LastOK.After(to) {
				c.cause = d.cause
				break
			}
		}
		if c.cause == unexplained && pushedOut(b, ds) {
			c.cause = causeTwoChanges
		}
		out = append(out, c)
	}
	return out
}

// pushedOut reports whether b's backend was the only node able to take new
// flows when b opened (every other node failed, stopped or drained then)
// and at least two of the others came back before b broke. Rendezvous
// rows change only where a returning node ranks above the row's hops, so
// this is the only way a row with two hops can lose the backend of an
// established flow without the backend failing.
func pushedOut(b broken, ds []*disruption) bool {
	if b.Backend == "" || b.Start.IsZero() {
		return false
	}
	out := map[string]bool{}  // out of the primaries when b opened
	back := map[string]bool{} // and back before b broke
	for _, d := range ds {
		if d.node == b.Backend || !d.covers(b.Start) {
			continue
		}
		out[d.node] = true
		if !d.to.IsZero() && d.to.Before(b.At) {
			back[d.node] = true
		}
	}
	for _, n := range nodeNames {
		if n != b.Backend && !out[n] {
			return false
		}
	}
	return len(back) >= 2
}

// endDrain closes node's open drain record.
func (d *disruptions) endDrain(node string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.list {
		if x.cause == causeDrained && x.node == node && x.to.IsZero() {
			x.to = time.Now()
		}
	}
}
