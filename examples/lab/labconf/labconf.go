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
	"text/template"
	"time"
)

// Node is one lab node and its point-to-point link to the router.
type Node struct {
	Name string
	// Addr is the node's end of the link: its underlay address, router id
	// and BGP source.
	Addr netip.Addr
	// RouterAddr is the router's end: the node's BGP neighbor and gateway.
	RouterAddr netip.Addr
}

// StateURL is where the node serves its node-state document.
func (n Node) StateURL() string { return "http://" + n.Addr.String() + ":9180/state" }

// Nodes are the lab's three nodes, in name order (lab.sh builds their links).
var Nodes = []Node{
	{Name: "n1", Addr: netip.MustParseAddr("192.0.2.2"), RouterAddr: netip.MustParseAddr("192.0.2.1")},
	{Name: "n2", Addr: netip.MustParseAddr("192.0.2.6"), RouterAddr: netip.MustParseAddr("192.0.2.5")},
	{Name: "n3", Addr: netip.MustParseAddr("192.0.2.10"), RouterAddr: netip.MustParseAddr("192.0.2.9")},
}

// Phantom is a cluster member that does not exist: listing it (Spec.Phantom)
// changes the membership without a node to serve, as a member announced
// before its machine is racked would.
var Phantom = Node{Name: "n4", Addr: netip.MustParseAddr("192.0.2.14"), RouterAddr: netip.MustParseAddr("192.0.2.13")}

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

// DefaultVIP is the VIP lab.sh configures.
var DefaultVIP = VIP{Name: "web", Addr: netip.MustParseAddr("198.51.100.10"), Services: []string{"tcp/80"}}

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

// Spec is the whole lab's configuration; Render writes one node's file.
type Spec struct {
	// Run is the lab's run directory: sockets, pins (Run/bpffs/NODE), state
	// (Run/state/NODE).
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
}

// Default is the configuration lab.sh writes.
func Default(run string) Spec {
	return Spec{Run: run, VIPs: []VIP{DefaultVIP}, Timers: DefaultTimers, StateDir: true}
}

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

// StatePath is node's state directory (when Spec.StateDir).
func (s Spec) StatePath(node string) string { return filepath.Join(s.Run, "state", node) }

var nodeTmpl = template.Must(template.New("node").Funcs(template.FuncMap{
	"dur":   func(d time.Duration) string { return d.String() },
	"quote": func(ss []string) string { return quoteList(ss) },
}).Parse(`# vipd config of lab node {{.Node.Name}} (written by examples/lab/labconf)
[node]
name = "{{.Node.Name}}"
router_id = "{{.Node.Addr}}"
underlay_v4 = "{{.Node.Addr}}"
{{- if .Spec.StateDir}}
state_dir = "{{.StatePath}}"
{{- end}}

[cluster]
seed = {{.Seed}}
poll_interval = "{{dur .Poll.Interval}}"
poll_timeout = "{{dur .Poll.Timeout}}"
rise = {{.Poll.Rise}}
fall = {{.Poll.Fall}}
{{- range .Members}}
[[cluster.member]]
name = "{{.Name}}"
underlay_v4 = "{{.Addr}}"
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
{{- if or .MED .Communities .Prepend}}
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
mode = "bgp"
[routing.bgp]
asn = 65001
listen_port = -1
[routing.bgp.graceful_restart]
enabled = true
restart_time = "60s"
[[routing.bgp.neighbor]]
address = "{{.Node.RouterAddr}}"
asn = 65000
local_address = "{{.Node.Addr}}"
hold_time = "{{dur .Spec.Timers.HoldTime}}"

[dataplane]
interface = "up0"
attach = "native"
pin_path = "{{.PinPath}}"

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

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Render returns node's vipd.toml for the lab described by s.
func (s Spec) Render(node string) ([]byte, error) {
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
	var b bytes.Buffer
	err := nodeTmpl.Execute(&b, map[string]any{
		"Spec": s, "Node": n, "Members": members, "Seed": Seed, "Poll": poll,
		"StatePath": s.StatePath(node), "PinPath": s.PinPath(node), "Socket": s.Socket(node),
	})
	if err != nil {
		return nil, fmt.Errorf("rendering the config of %s: %w", node, err)
	}
	return b.Bytes(), nil
}

// Write renders node's config and replaces its file atomically, so a vipd
// reloading at that moment reads the old file or the new one, never half.
func (s Spec) Write(node string) error {
	data, err := s.Render(node)
	if err != nil {
		return err
	}
	if s.StateDir {
		if err := os.MkdirAll(s.StatePath(node), 0o700); err != nil {
			return fmt.Errorf("creating the state directory of %s: %w", node, err)
		}
	}
	path := s.ConfigPath(node)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing the config of %s: %w", node, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing the config of %s: %w", node, err)
	}
	return nil
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
