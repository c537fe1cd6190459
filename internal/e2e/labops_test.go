package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vipd/vipd/examples/lab/labconf"
	"github.com/vipd/vipd/internal/api"
)

// nodeNames are the lab's nodes.
var nodeNames = []string{"n1", "n2", "n3"}

// vipPool are the addresses the tests configure VIPs from; a VIP's index
// here also picks its client port ranges.
var vipPool = []netip.Addr{
	netip.MustParseAddr("198.51.100.10"),
	netip.MustParseAddr("198.51.100.11"),
	netip.MustParseAddr("198.51.100.12"),
	netip.MustParseAddr("198.51.100.13"),
}

func ptr[T any](v T) *T { return &v }

// supported caches labconf.Spec.Supported for the test binary: the vipd
// under test knows a fixed set of keys.
var (
	supportedOnce    sync.Once
	supportedDropped []string
	supportedErr     error
)

// unknownKeys returns the optional config keys ("node.state_dir", ...) the
// vipd under test does not know, asking its vipctl once.
func unknownKeys(bin string) ([]string, error) {
	supportedOnce.Do(func() {
		_, supportedDropped, supportedErr = labconf.Default(os.TempDir()).Supported(filepath.Join(bin, "vipctl"))
		if len(supportedDropped) > 0 {
			fmt.Printf("e2e: the vipd under test does not know %s: the tests run without\n", strings.Join(supportedDropped, ", "))
		}
	})
	return supportedDropped, supportedErr
}

// startLabSpec starts the lab with the nodes' configs written from spec
// (spec.Run is set here), and vipd on every node.
func startLabSpec(t *testing.T, spec labconf.Spec) *lab {
	t.Helper()
	l := newLab(t)
	if out, err := l.script("up"); err != nil {
		t.Fatalf("lab up: %v: %s", err, out)
	}
	l.writeSpec(spec)
	for _, n := range nodeNames {
		l.startVipd(n)
	}
	// A vipd that refuses its config exits at once: say why now rather
	// than time out waiting for the lab.
	time.Sleep(300 * time.Millisecond)
	for _, n := range nodeNames {
		if !alive(l.pid(n)) {
			data, _ := os.ReadFile(filepath.Join(l.run, n+"-vipd.log"))
			t.Fatalf("vipd on %s exited at start:\n%s", n, tail(string(data), 10))
		}
	}
	return l
}

// writeSpec writes every node's config from spec, without the optional
// keys the vipd under test does not know (said once in the log).
func (l *lab) writeSpec(spec labconf.Spec) {
	l.t.Helper()
	spec.Run = l.run
	dropped, err := unknownKeys(l.bin)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, k := range dropped {
		switch k {
		case "node.state_dir":
			spec.StateDir = false
		case "timers.remove_timeout":
			spec.Timers.RemoveTimeout = 0
		}
	}
	if err := spec.WriteAll(); err != nil {
		l.t.Fatal(err)
	}
	l.mu.Lock()
	l.spec = spec.Clone()
	l.mu.Unlock()
}

// specCopy is the configuration the nodes run (last written).
func (l *lab) specCopy() labconf.Spec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spec.Clone()
}

// startVipd starts vipd on node with its current config.
func (l *lab) startVipd(node string) {
	l.t.Helper()
	if out, err := l.script("start", node); err != nil {
		l.t.Fatalf("starting vipd on %s: %v: %s", node, err, out)
	}
}

// pid is node's vipd pid, as lab.sh start wrote it.
func (l *lab) pid(node string) int {
	data, err := os.ReadFile(filepath.Join(l.run, node+"-vipd.pid"))
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return p
}

// alive reports whether pid runs (a zombie does not: nothing reaps the
// daemons lab.sh started until their parent, init here, gets to it).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: the comm may hold spaces, the state follows the
	// last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// signalVipd sends sig to node's vipd and, if wait, waits for it to exit.
func (l *lab) signalVipd(node string, sig syscall.Signal, wait time.Duration) {
	l.t.Helper()
	pid := l.pid(node)
	if pid == 0 || !alive(pid) {
		l.t.Fatalf("no vipd runs on %s", node)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		l.t.Fatalf("signalling vipd on %s: %v", node, err)
	}
	if wait > 0 {
		l.waitFor(fmt.Sprintf("vipd on %s to exit after %v", node, sig), wait, func() bool { return !alive(pid) })
	}
}

// sighupAll signals every running vipd to reload, in the given order.
func (l *lab) sighup(nodes ...string) {
	l.t.Helper()
	for _, n := range nodes {
		l.signalVipd(n, syscall.SIGHUP, 0)
	}
}

// upgrade is an upgrade restart: vipctl restart, then a new vipd.
func (l *lab) upgrade(node string) {
	l.t.Helper()
	pid := l.pid(node)
	if out, err := l.vipctl(node, "restart"); err != nil {
		l.t.Fatalf("vipctl restart on %s: %v: %s", node, err, out)
	}
	l.waitFor("the old vipd on "+node+" to exit", 15*time.Second, func() bool { return !alive(pid) })
	l.startVipd(node)
}

// linkDown takes node's uplink down; linkUp brings it back with its
// default routes (the kernel removed them with the link).
func (l *lab) linkDown(node string) {
	l.t.Helper()
	if out, err := l.exec(node, "ip", "link", "set", "up0", "down").CombinedOutput(); err != nil {
		l.t.Fatalf("link down on %s: %v: %s", node, err, out)
	}
}

func (l *lab) linkUp(node string) {
	l.t.Helper()
	n, _ := labconf.NodeNamed(node)
	for _, argv := range [][]string{
		{"ip", "link", "set", "up0", "up"},
		{"ip", "route", "replace", "default", "via", n.Gateway.String()},
		{"ip", "-6", "route", "replace", "default", "via", n.Gateway6.String()},
	} {
		// The IPv6 prefix route comes back a moment after the link:
		// until then the gateway is unreachable.
		for deadline := time.Now().Add(5 * time.Second); ; {
			out, err := l.exec(node, argv...).CombinedOutput()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				l.t.Fatalf("link up on %s: %s: %v: %s", node, strings.Join(argv, " "), err, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// stopService and startService stop and start the TCP service on node.
func (l *lab) stopService(node string) {
	l.t.Helper()
	if out, err := l.script("unserve", node); err != nil {
		l.t.Fatalf("stopping the service on %s: %v: %s", node, err, out)
	}
}

func (l *lab) startService(node string) {
	l.t.Helper()
	if out, err := l.script("serve", node); err != nil {
		l.t.Fatalf("starting the service on %s: %v: %s", node, err, out)
	}
}

// drain drains (or with undo undrains) node, or one VIP of it.
func (l *lab) drain(node string, vip netip.Addr, undo bool) {
	l.t.Helper()
	args := []string{"drain"}
	if undo {
		args = []string{"undrain"}
	}
	if vip.IsValid() {
		args = append(args, "--vip", vip.String())
	}
	if out, err := l.vipctl(node, args...); err != nil {
		l.t.Fatalf("vipctl %s on %s: %v: %s", strings.Join(args, " "), node, err, out)
	}
}

// apiStatus asks node's vipd for its status over the control socket: the
// document `vipctl status --json` prints unchanged (docs/api.md). nil when
// vipd does not answer.
func (l *lab) apiStatus(node string) (*api.Status, error) {
	st, _, err := l.statusDoc(node)
	return st, err
}

// statusDoc is apiStatus with the claims of newer vipds that api.Status of
// this tree may not have (see statusExtra).
func (l *lab) statusDoc(node string) (*api.Status, *statusExtra, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	sock := filepath.Join(l.run, node+".sock")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://vipd/v1/status", nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("status of %s: %w", node, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("status of %s: %w", node, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("status of %s: %s: %s", node, resp.Status, body)
	}
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, nil, fmt.Errorf("decoding the status of %s: %w", node, err)
	}
	x, err := decodeExtra(body)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding the status of %s: %w", node, err)
	}
	return &st, x, nil
}

// statusExtra holds the claims issue 10 adds to the status document
// (durable drains, the routing daemon read back), decoded here rather than
// through api.Status so that the tests build and run against a vipd with
// or without them: a claim a vipd does not make is not checked.
type statusExtra struct {
	// Drains: the vipd reports operator drains (state_dir is present).
	Drains    bool             `json:"-"`
	NodeDrain *json.RawMessage `json:"node_drain"`
	// World: the vipd reports what the routing daemon exports (world is
	// present).
	World bool       `json:"-"`
	VIPs  []vipExtra `json:"vips"`
}

type vipExtra struct {
	Address netip.Addr       `json:"address"`
	Drain   *json.RawMessage `json:"drain"`
	// Route: announced, withdrawn, pending, no-session, diverged, unknown.
	Route       string `json:"route"`
	RouteReason string `json:"route_reason"`
	RouteWorld  *struct {
		Read     bool     `json:"read"`
		Exported bool     `json:"exported"`
		Peers    []string `json:"peers"`
	} `json:"world"`
}

func decodeExtra(body []byte) (*statusExtra, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, err
	}
	var x statusExtra
	if err := json.Unmarshal(body, &x); err != nil {
		return nil, err
	}
	_, x.Drains = keys["state_dir"]
	_, x.World = keys["world"]
	return &x, nil
}

func (x *statusExtra) vip(a netip.Addr) (vipExtra, bool) {
	if x == nil {
		return vipExtra{}, false
	}
	for _, v := range x.VIPs {
		if v.Address == a {
			return v, true
		}
	}
	return vipExtra{}, false
}

// handle returns a netlink handle inside the lab namespace x.
func (l *lab) handle(x string) (*netlink.Handle, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.handles[x]; h != nil {
		return h, nil
	}
	ns, err := netns.GetFromName(l.ns(x))
	if err != nil {
		return nil, fmt.Errorf("opening namespace %s: %w", l.ns(x), err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", l.ns(x), err)
	}
	if l.handles == nil {
		l.handles = map[string]*netlink.Handle{}
	}
	l.handles[x] = h
	return h, nil
}

func (l *lab) closeHandles() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.handles {
		h.Close()
	}
	l.handles = nil
}
