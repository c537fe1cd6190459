// Package labconf writes the vipd configuration of the namespace lab's nodes
// (examples/lab): the lab's address plan, its VIPs with their services and
// route attributes, its timers. lab.sh (through `labtool conf`) and the
// end-to-end tests of internal/e2e render node configs here, so the demo and
// the tests run the same lab.
package labconf

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/vipd/vipd/internal/cluster"
)

// The lab's address plan (lab.sh builds the same):
//
//	client 203.0.113.2, 2001:db8:c::2 -- edge (.1, ::1) --+-- r1 (edge link 192.0.2.128/30, 2001:db8:e1::/64)
//	                                                       +-- r2 (edge link 192.0.2.132/30, 2001:db8:e2::/64)
//	node segment i (i = 1..3): 192.0.2.16(i-1)/28 and 2001:db8:0:i::/64,
//	  r1 .1/::1, r2 .2/::2, the routers' anycast gateway .3/::3, node .10/::10
//
// Each node's uplink up0 is on a segment of its own (a bridge in the lab's
// switch namespace) shared with r1 and r2, as a server port is with a pair
// of switches: one XDP uplink, two routers, and a gateway address both
// routers answer for, so the node's own traffic survives either router.

// Node is one lab node and its segment.
type Node struct {
	Name string
	// Addr and Addr6 are the node's addresses on its segment: its
	// underlay addresses (GUE endpoints), router id and BGP source.
	Addr, Addr6 netip.Addr
	// Routers are r1's and r2's addresses on the segment (the node's BGP
	// neighbours), Routers6 their IPv6 ones.
	Routers, Routers6 [2]netip.Addr
	// Gateway and Gateway6 are the anycast gateway both routers answer
	// for: the node's default routes.
	Gateway, Gateway6 netip.Addr
	// Bits and Bits6 are the segment's prefix lengths.
	Bits, Bits6 int
}

// StateURL is where the node serves its node-state document.
func (n Node) StateURL() string { return "http://" + n.Addr.String() + ":9180/state" }

// segment returns node i's (from 1) addresses.
func segment(name string, i int) Node {
	b := byte(16 * (i - 1))
	v6 := func(host byte) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, byte(i), 15: host})
	}
	v4 := func(host byte) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, b + host}) }
	return Node{
		Name: name, Addr: v4(10), Addr6: v6(0x10),
		Routers: [2]netip.Addr{v4(1), v4(2)}, Routers6: [2]netip.Addr{v6(1), v6(2)},
		Gateway: v4(3), Gateway6: v6(3), Bits: 28, Bits6: 64,
	}
}

// Nodes are the lab's three nodes, in name order (lab.sh builds their
// segments).
var Nodes = []Node{segment("n1", 1), segment("n2", 2), segment("n3", 3)}

// Phantom is a cluster member that does not exist: listing it (Spec.Phantom)
// changes the membership without a node to serve, as a member announced
// before its machine is racked would.
var Phantom = segment("n4", 4)

// Router is one of the lab's two routers.
type Router struct {
	Name string
	// ID is its router id (and BGP identifier).
	ID netip.Addr
	// Index is 0 for r1, 1 for r2: its address on a node segment is
	// Node.Routers[Index].
	Index int
}

// Routers are r1 and r2.
var Routers = []Router{
	{Name: "r1", ID: netip.MustParseAddr("192.0.2.1"), Index: 0},
	{Name: "r2", ID: netip.MustParseAddr("192.0.2.2"), Index: 1},
}

// ClientAddr and ClientAddr6 are the client's addresses.
var (
	ClientAddr  = netip.MustParseAddr("203.0.113.2")
	ClientAddr6 = netip.MustParseAddr("2001:db8:c::2")
)

// IncludeNode is the node whose BIRD runs the operator's own bird.conf,
// which includes the file vipd writes (routing.bird mode include); the
// others run the file vipd writes as their whole configuration (mode full).
const IncludeNode = "n3"

// NodeByAddr names the lab node or router an address belongs to: a node's
// own address, or a router's address on a node segment.
func NodeByAddr(a netip.Addr) (string, bool) {
	for _, n := range append(slices.Clone(Nodes), Phantom) {
		switch a {
		case n.Addr, n.Addr6:
			return n.Name, true
		}
		for i, r := range Routers {
			if a == n.Routers[i] || a == n.Routers6[i] {
				return r.Name, true
			}
		}
	}
	return "", false
}

// NodeNamed returns the lab node called name.
func NodeNamed(name string) (Node, bool) {
	for _, n := range Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Seed is the lab's rendezvous-hashing seed ([cluster] seed).
const Seed = 7

// GUEPort is the GUE port of the lab (vipd's default).
const GUEPort = 19523

// VIP is one [[vip]] of the lab: every node gets the same list.
type VIP struct {
	Name string
	Addr netip.Addr
	// Services are written as in vipd.toml: "tcp/80".
	Services []string
	// BGP route attributes; zero values are left out.
	MED         *uint32
	Communities []string
	Prepend     int
}

// DefaultVIP and DefaultVIP6 are the VIPs lab.sh configures: one IPv4 and
// one IPv6 VIP, served by every node.
var (
	DefaultVIP  = VIP{Name: "web", Addr: netip.MustParseAddr("198.51.100.10"), Services: []string{"tcp/80"}}
	DefaultVIP6 = VIP{Name: "web6", Addr: netip.MustParseAddr("2001:db8:100::10"), Services: []string{"tcp/80"}}
)

// Timers are the [timers] of every node plus the BGP hold time.
type Timers struct {
	WithdrawGrace time.Duration
	TableGrace    time.Duration
	DrainTimeout  time.Duration
	// RemoveTimeout is how long a VIP removed by a reload may drain; zero
	// leaves the key out (vipd's default, or a vipd that predates it).
	RemoveTimeout time.Duration
	HoldTime      time.Duration
}

// DefaultTimers are lab.sh's: the demo shows each step.
var DefaultTimers = Timers{WithdrawGrace: 2 * time.Second, TableGrace: 2 * time.Second, DrainTimeout: 5 * time.Second, HoldTime: 9 * time.Second}

// FastTimers are the property test's: short enough that tens of steps fit
// in minutes, long enough for the lab's BGP and polling to converge.
var FastTimers = Timers{WithdrawGrace: time.Second, TableGrace: 2 * time.Second, DrainTimeout: 3 * time.Second, RemoveTimeout: 3 * time.Second, HoldTime: 3 * time.Second}

// Poll is how the nodes poll each other ([cluster]).
type Poll struct {
	Interval, Timeout time.Duration
	Rise, Fall        int
}

// LabPoll is the lab's polling: a failed node is seen within a second.
var LabPoll = Poll{Interval: 300 * time.Millisecond, Timeout: 250 * time.Millisecond, Rise: 1, Fall: 3}

// Routing modes of the lab.
const (
	ModeBGP  = "bgp"  // vipd's embedded GoBGP, a session to each router
	ModeOSPF = "ospf" // BIRD on every node, OSPFv2 and OSPFv3 to both routers
)

// Spec is the whole lab's configuration; Render writes one node's file.
type Spec struct {
	// Run is the lab's run directory: sockets, pins (Run/bpffs/NODE), state
	// (Run/state/NODE), each node's BIRD files (Run/NODE-etc, Run/NODE-run).
	Run     string
	VIPs    []VIP
	Phantom bool
	Timers  Timers
	// Poll is LabPoll when zero.
	Poll Poll
	// StateDir sets [node] state_dir to Run/state/NODE. Every lab node
	// needs a directory of its own (drains written to one shared default
	// would come back on every node), but a vipd that predates the key
	// rejects it: see Supported.
	StateDir bool
	// Mode is ModeBGP (the default when empty) or ModeOSPF.
	Mode string
	// Bird is the nodes' bird binary in OSPF mode (birdc next to it); ""
	// is the installed one.
	Bird string
	// IgnoreMTU sets ignore_mtu on the nodes' OSPF instances (a patched
	// Bird).
	IgnoreMTU bool
	// GuardTimeout is [routing.bird] guard_timeout (0 leaves it out).
	GuardTimeout time.Duration
	// SwitchMTU is [dataplane] switch_mtu (0 leaves it out).
	SwitchMTU int
	// AllowIPForward sets [node] allow_ip_forward on every node.
	AllowIPForward bool
}

// Default is the configuration lab.sh writes.
func Default(run string) Spec {
	return Spec{Run: run, VIPs: []VIP{DefaultVIP, DefaultVIP6}, Timers: DefaultTimers, StateDir: true}
}

// OSPF reports whether the lab runs in OSPF mode.
func (s Spec) OSPF() bool { return s.Mode == ModeOSPF }

// Clone returns a deep copy of s.
func (s Spec) Clone() Spec {
	c := s
	c.VIPs = make([]VIP, len(s.VIPs))
	for i, v := range s.VIPs {
		v.Services = slices.Clone(v.Services)
		v.Communities = slices.Clone(v.Communities)
		if v.MED != nil {
			m := *v.MED
			v.MED = &m
		}
		c.VIPs[i] = v
	}
	return c
}

// ConfigPath is where node's config lives in the run directory.
func (s Spec) ConfigPath(node string) string { return filepath.Join(s.Run, node+".toml") }

// Socket is node's control socket.
func (s Spec) Socket(node string) string { return filepath.Join(s.Run, node+".sock") }

// PinPath is node's bpffs pin directory.
func (s Spec) PinPath(node string) string { return filepath.Join(s.Run, "bpffs", node) }

// KeyPath is the cluster key file every node signs its state with
// ([cluster] key_file); Write creates it once per lab run.
func (s Spec) KeyPath() string { return filepath.Join(s.Run, "cluster.key") }

// writeKey creates the lab's cluster key unless it exists: the lab signs
// its node state as a production cluster does.
func (s Spec) writeKey() error {
	path := s.KeyPath()
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	key, err := cluster.GenerateKey()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, cluster.FormatKeyFile(key), 0o600); err != nil {
		return fmt.Errorf("writing the lab's cluster key: %w", err)
	}
	return os.Rename(tmp, path)
}

// StatePath is node's state directory (when Spec.StateDir).
func (s Spec) StatePath(node string) string { return filepath.Join(s.Run, "state", node) }

// BirdEtc is node's BIRD configuration directory, laid out as Debian's
// /etc/bird (owned by the bird user and group, mode 0750): vipd writes its
// file there, BIRD (running as bird) reads it.
func (s Spec) BirdEtc(node string) string { return filepath.Join(s.Run, node+"-etc") }

// BirdRun is node's BIRD runtime directory, as Debian's /run/bird
// (bird:bird 0775): control socket, pid file, log.
func (s Spec) BirdRun(node string) string { return filepath.Join(s.Run, node+"-run") }

// BirdSocket is node's BIRD control socket.
func (s Spec) BirdSocket(node string) string { return filepath.Join(s.BirdRun(node), "bird.ctl") }

// BirdFile is the file vipd writes for node's BIRD: the whole bird.conf
// (mode full), or the include file (IncludeNode, mode include).
func (s Spec) BirdFile(node string) string {
	if node == IncludeNode {
		return filepath.Join(s.BirdEtc(node), "vipd.conf")
	}
	return filepath.Join(s.BirdEtc(node), "bird.conf")
}

// BirdConf is the configuration node's BIRD is started with: vipd's file
// (mode full) or the operator's bird.conf that includes it.
func (s Spec) BirdConf(node string) string { return filepath.Join(s.BirdEtc(node), "bird.conf") }

// BirdLog is node's BIRD log (the doctor reads its MTU mismatch lines).
func (s Spec) BirdLog(node string) string { return filepath.Join(s.BirdRun(node), "bird.log") }

var nodeTmpl = template.Must(template.New("node").Funcs(template.FuncMap{
	"dur":   func(d time.Duration) string { return d.String() },
	"quote": func(ss []string) string { return quoteList(ss) },
}).Parse(`# vipd config of lab node {{.Node.Name}} (written by examples/lab/labconf)
[node]
name = "{{.Node.Name}}"
router_id = "{{.Node.Addr}}"
underlay_v4 = "{{.Node.Addr}}"
underlay_v6 = "{{.Node.Addr6}}"
{{- if .Spec.StateDir}}
state_dir = "{{.StatePath}}"
{{- end}}
{{- if .Spec.AllowIPForward}}
allow_ip_forward = true
{{- end}}

[cluster]
seed = {{.Seed}}
poll_interval = "{{dur .Poll.Interval}}"
poll_timeout = "{{dur .Poll.Timeout}}"
rise = {{.Poll.Rise}}
fall = {{.Poll.Fall}}
key_file = "{{.KeyPath}}"
{{- range .Members}}
[[cluster.member]]
name = "{{.Name}}"
underlay_v4 = "{{.Addr}}"
underlay_v6 = "{{.Addr6}}"
state_url = "{{.StateURL}}"
{{- end}}
{{range .Spec.VIPs}}
[[vip]]
{{- if .Name}}
name = "{{.Name}}"
{{- end}}
address = "{{.Addr}}"
services = {{quote .Services}}
[vip.check]
type = "tcp"
target = "127.0.0.1:80"
interval = "500ms"
timeout = "250ms"
rise = 1
fall = 2
{{- if and (not $.OSPF) (or .MED .Communities .Prepend)}}
[vip.bgp]
{{- if .MED}}
med = {{.MED}}
{{- end}}
{{- if .Communities}}
communities = {{quote .Communities}}
{{- end}}
{{- if .Prepend}}
as_path_prepend = {{.Prepend}}
{{- end}}
{{- end}}
{{end}}
[routing]
{{- if .OSPF}}
mode = "bird-ospf"
[routing.bird]
{{- if .Include}}
# The operator's own bird.conf ({{.BirdConf}}) includes this file.
mode = "include"
{{- else}}
mode = "full"
router_id = "{{.Node.Addr}}"
log_file = "{{.BirdLog}}"
{{- end}}
config_file = "{{.BirdFile}}"
socket = "{{.BirdSocket}}"
bird = "{{.BirdBin}}"
birdc = "{{.Birdc}}"
{{- if .Spec.GuardTimeout}}
guard_timeout = "{{dur .Spec.GuardTimeout}}"
{{- end}}
{{- if not .Include}}
{{- range $v := .Versions}}
[[routing.bird.ospf]]
name = "ospf_v{{$v}}"
version = {{$v}}
ecmp = true
{{- if $.Spec.IgnoreMTU}}
ignore_mtu = true
{{- end}}
[[routing.bird.ospf.area]]
id = "0"
[[routing.bird.ospf.area.interface]]
name = "up0"
type = "broadcast"
hello = 1
dead = 3
priority = 0
{{- end}}
{{- end}}
{{- else}}
mode = "bgp"
[routing.bgp]
asn = 65001
listen_port = -1
[routing.bgp.graceful_restart]
enabled = true
restart_time = "60s"
{{- range .Node.Routers}}
[[routing.bgp.neighbor]]
address = "{{.}}"
asn = 65000
local_address = "{{$.Node.Addr}}"
hold_time = "{{dur $.Spec.Timers.HoldTime}}"
{{- end}}
{{- end}}

[dataplane]
interface = "up0"
attach = "native"
pin_path = "{{.PinPath}}"
{{- if .Spec.SwitchMTU}}
switch_mtu = {{.Spec.SwitchMTU}}
{{- end}}

[timers]
withdraw_grace = "{{dur .Spec.Timers.WithdrawGrace}}"
table_grace = "{{dur .Spec.Timers.TableGrace}}"
drain_timeout = "{{dur .Spec.Timers.DrainTimeout}}"
{{- if .Spec.Timers.RemoveTimeout}}
remove_timeout = "{{dur .Spec.Timers.RemoveTimeout}}"
{{- end}}

[api]
socket = "{{.Socket}}"
state_listen = "{{.Node.Addr}}:9180"
`))

// operatorTmpl is the bird.conf an operator writes for a node in include
// mode: their own OSPF protocols, which export the VIP routes of the file
// vipd writes and includes here (protocols vipd_vip4 and vipd_vip6).
var operatorTmpl = template.Must(template.New("operator").Parse(`# The operator's own BIRD config of lab node {{.Node.Name}} (examples/lab/labconf).
# vipd writes only the VIP routes, in {{.BirdFile}}; this file includes it
# and exports them into OSPF by protocol name.
router id {{.Node.Addr}};
log "{{.BirdLog}}" all;
include "{{.BirdFile}}";

protocol device {
}
{{range .Versions}}
protocol ospf v{{.}} core{{.}} {
	ipv{{if eq . 2}}4{{else}}6{{end}} {
		import all;
		export where proto = "vipd_vip{{if eq . 2}}4{{else}}6{{end}}";
	};
	ecmp yes;
{{- if $.Spec.IgnoreMTU}}
	ignoremtu yes;
{{- end}}
	area 0 {
		interface "up0" { type broadcast; hello 1; dead 3; priority 0; };
	};
}
{{end}}`))

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Render returns node's vipd.toml for the lab described by s.
func (s Spec) Render(node string) ([]byte, error) {
	return s.render(nodeTmpl, node)
}

// RenderOperatorBird returns the operator's own bird.conf of IncludeNode
// (OSPF mode): it includes the file vipd writes.
func (s Spec) RenderOperatorBird() ([]byte, error) {
	return s.render(operatorTmpl, IncludeNode)
}

func (s Spec) render(t *template.Template, node string) ([]byte, error) {
	n, ok := NodeNamed(node)
	if !ok {
		return nil, fmt.Errorf("no lab node %q", node)
	}
	poll := s.Poll
	if poll == (Poll{}) {
		poll = LabPoll
	}
	members := slices.Clone(Nodes)
	if s.Phantom {
		members = append(members, Phantom)
	}
	birdBin := s.Bird
	if birdBin == "" {
		birdBin = "bird"
	}
	birdc := "birdc"
	if s.Bird != "" {
		birdc = filepath.Join(filepath.Dir(s.Bird), "birdc")
	}
	var b bytes.Buffer
	err := t.Execute(&b, map[string]any{
		"Spec": s, "Node": n, "Members": members, "Seed": Seed, "Poll": poll,
		"StatePath": s.StatePath(node), "PinPath": s.PinPath(node), "Socket": s.Socket(node),
		"OSPF": s.OSPF(), "Include": node == IncludeNode, "Versions": []int{2, 3},
		"BirdFile": s.BirdFile(node), "BirdConf": s.BirdConf(node), "BirdSocket": s.BirdSocket(node),
		"BirdLog": s.BirdLog(node), "BirdBin": birdBin, "Birdc": birdc,
		"KeyPath": s.KeyPath(),
	})
	if err != nil {
		return nil, fmt.Errorf("rendering the config of %s: %w", node, err)
	}
	return b.Bytes(), nil
}

// Write renders node's config and replaces its file atomically, so a vipd
// reloading at that moment reads the old file or the new one, never half.
// In OSPF mode, for IncludeNode, it writes the operator's bird.conf too
// (the BIRD directories must exist: lab.sh makes them).
func (s Spec) Write(node string) error {
	data, err := s.Render(node)
	if err != nil {
		return err
	}
	if err := s.writeKey(); err != nil {
		return err
	}
	if s.StateDir {
		if err := os.MkdirAll(s.StatePath(node), 0o700); err != nil {
			return fmt.Errorf("creating the state directory of %s: %w", node, err)
		}
	}
	if err := writeAtomic(s.ConfigPath(node), data, 0o644); err != nil {
		return fmt.Errorf("writing the config of %s: %w", node, err)
	}
	if s.OSPF() && node == IncludeNode {
		data, err := s.RenderOperatorBird()
		if err != nil {
			return err
		}
		// As the operator would: readable by BIRD's user (the group of
		// the directory), like Debian's bird.conf.
		if err := writeAtomic(s.BirdConf(node), data, 0o640); err != nil {
			return fmt.Errorf("writing the bird.conf of %s: %w", node, err)
		}
		if fi, err := os.Stat(s.BirdEtc(node)); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				if err := os.Chown(s.BirdConf(node), int(st.Uid), int(st.Gid)); err != nil {
					return fmt.Errorf("giving the bird.conf of %s to bird: %w", node, err)
				}
			}
		}
	}
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteAll writes every node's config.
func (s Spec) WriteAll() error {
	var errs []error
	for _, n := range Nodes {
		errs = append(errs, s.Write(n.Name))
	}
	return errors.Join(errs...)
}

var unknownKeyRE = regexp.MustCompile(`(node\.state_dir|timers\.remove_timeout): unknown key`)

// Supported returns s without the optional keys the vipd behind vipctl does
// not know (it checks a rendered config with `vipctl config check`), and
// the keys it dropped. A lab run by an older vipd then still starts, and
// the tests fail for what that vipd does, not for its config.
func (s Spec) Supported(vipctl string) (Spec, []string, error) {
	dir, err := os.MkdirTemp("", "labconf")
	if err != nil {
		return s, nil, err
	}
	defer os.RemoveAll(dir)
	probe := s.Clone()
	probe.Run = dir
	probe.StateDir = true
	if probe.Timers.RemoveTimeout == 0 {
		probe.Timers.RemoveTimeout = probe.Timers.DrainTimeout
	}
	data, err := probe.Render(Nodes[0].Name)
	if err != nil {
		return s, nil, err
	}
	file := filepath.Join(dir, "probe.toml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return s, nil, err
	}
	out, err := exec.Command(vipctl, "config", "check", file).CombinedOutput()
	if err == nil {
		return s, nil, nil
	}
	var dropped []string
	for _, m := range unknownKeyRE.FindAllStringSubmatch(string(out), -1) {
		dropped = append(dropped, m[1])
	}
	if len(dropped) == 0 {
		return s, nil, fmt.Errorf("checking a lab config with vipctl: %v: %s", err, out)
	}
	if slices.Contains(dropped, "node.state_dir") {
		s.StateDir = false
	}
	if slices.Contains(dropped, "timers.remove_timeout") {
		s.Timers.RemoveTimeout = 0
	}
	return s, dropped, nil
}
