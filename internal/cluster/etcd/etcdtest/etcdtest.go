// Package etcdtest runs a real etcd cluster for tests: Debian's etcd-server,
// one member per network namespace, the namespaces joined by a bridge in a
// hub namespace, and a client namespace for the test's own connections.
// Members can be killed (SIGKILL) and restarted on their data, so tests can
// lose and regain the quorum. Everything is removed in t.Cleanup; nothing
// touches the host's network.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/netnstest"
)

// Ports etcd listens on, in each member's namespace.
const (
	ClientPort = 2379
	PeerPort   = 2380
)

// subnet numbers the namespaces: members .1 to .n, the client .200. The
// addresses exist only inside the test's namespaces (RFC 2544 range).
var subnet = netip.MustParsePrefix("198.18.0.0/24")

// ClientAddr is the client namespace's address.
var ClientAddr = addr(200)

func addr(i int) netip.Addr {
	a := subnet.Addr().As4()
	a[3] = byte(i)
	return netip.AddrFrom4(a)
}

// Options tune the cluster.
type Options struct {
	// HeartbeatMS and ElectionMS are etcd's raft timers (defaults 50 and
	// 500: a lost leader is replaced in about a second).
	HeartbeatMS, ElectionMS int
}

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	Hub     *netnstest.NS
	Client  *netnstest.NS
	members []*Member
	opts    Options
}

// Member is one etcd member.
type Member struct {
	Name    string
	NS      *netnstest.NS
	Addr    netip.Addr
	dataDir string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Which returns etcd's path, or "" when it is not installed.
func Which() string {
	p, err := exec.LookPath("etcd")
	if err != nil {
		return ""
	}
	return p
}

// Start starts an n-member cluster and waits until it serves. It skips the
// test when not root; it fails when etcd is not installed (make deps
// installs it: a missing real part is a broken rig, not a reason to skip).
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	netnstest.RequireRoot(t)
	if Which() == "" {
		t.Fatal("etcd is not installed (Debian etcd-server; run make deps)")
	}
	if opts.HeartbeatMS == 0 {
		opts.HeartbeatMS = 50
	}
	if opts.ElectionMS == 0 {
		opts.ElectionMS = 500
	}
	c := &Cluster{t: t, opts: opts}
	c.Hub = netnstest.New(t, "eh")
	c.Hub.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	c.Hub.MustRun(t, "ip", "link", "set", "br0", "up")
	c.Client = netnstest.New(t, "ec")
	c.attach(c.Client, ClientAddr)
	dir := t.TempDir()
	for i := range n {
		m := &Member{
			Name:    fmt.Sprintf("e%d", i+1),
			NS:      netnstest.New(t, fmt.Sprintf("e%d", i+1)),
			Addr:    addr(i + 1),
			dataDir: filepath.Join(dir, fmt.Sprintf("e%d", i+1)),
			logPath: filepath.Join(dir, fmt.Sprintf("e%d.log", i+1)),
		}
		c.attach(m.NS, m.Addr)
		c.members = append(c.members, m)
	}
	// Cleanups run last-in first-out: the processes stop before their
	// namespaces go.
	t.Cleanup(func() {
		for _, m := range c.members {
			m.kill()
		}
		if t.Failed() {
			for _, m := range c.members {
				log, _ := os.ReadFile(m.logPath)
				t.Logf("etcd %s log (last 3000 bytes):\n%s", m.Name, tail(log, 3000))
			}
		}
	})
	for i := range c.members {
		c.startMember(i, "new")
	}
	c.WaitReady(30 * time.Second)
	return c
}

// attach joins ns to the hub's bridge with address a.
func (c *Cluster) attach(ns *netnstest.NS, a netip.Addr) {
	inner, outer := netnstest.Veth(c.t, ns, c.Hub)
	c.Hub.MustRun(c.t, "ip", "link", "set", outer, "master", "br0")
	ns.MustRun(c.t, "ip", "addr", "add", netip.PrefixFrom(a, subnet.Bits()).String(), "dev", inner)
}

func (c *Cluster) initialCluster() string {
	var parts []string
	for _, m := range c.members {
		parts = append(parts, fmt.Sprintf("%s=http://%s", m.Name, netip.AddrPortFrom(m.Addr, PeerPort)))
	}
	return strings.Join(parts, ",")
}

func (c *Cluster) startMember(i int, state string) {
	m := c.members[i]
	peer := "http://" + netip.AddrPortFrom(m.Addr, PeerPort).String()
	client := "http://" + netip.AddrPortFrom(m.Addr, ClientPort).String()
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := m.NS.Cmd("etcd",
		"--name", m.Name,
		"--data-dir", m.dataDir,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--initial-cluster", c.initialCluster(),
		"--initial-cluster-state", state,
		"--initial-cluster-token", "vipd-test",
		"--heartbeat-interval", fmt.Sprint(c.opts.HeartbeatMS),
		"--election-timeout", fmt.Sprint(c.opts.ElectionMS),
		"--logger", "zap",
		"--log-outputs", "stderr",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("starting etcd %s: %v", m.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
}

// kill SIGKILLs the member's etcd (ip netns exec execs it: the pid is
// etcd's) and waits for it.
func (m *Member) kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// PID returns the pid of the member's etcd, or 0 when it is not running.
func (m *Member) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Members returns the members.
func (c *Cluster) Members() []*Member { return c.members }

// Kill kills member i (SIGKILL, no shutdown).
func (c *Cluster) Kill(i int) { c.members[i].kill() }

// Restart starts member i again on its data directory.
func (c *Cluster) Restart(i int) { c.startMember(i, "existing") }

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, "http://"+netip.AddrPortFrom(m.Addr, ClientPort).String())
	}
	return out
}

// Dial opens a TCP connection from the client namespace: the dialer to
// give an etcd client in the test process.
func (c *Cluster) Dial(ctx context.Context, address string) (net.Conn, error) {
	var conn net.Conn
	err := c.Client.Do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "tcp", address)
		return err
	})
	return conn, err
}

// Etcdctl runs etcdctl (API v3) against the cluster from the client
// namespace.
func (c *Cluster) Etcdctl(args ...string) (string, error) {
	argv := append([]string{"env", "ETCDCTL_API=3", "etcdctl", "--command-timeout=3s",
		"--endpoints", strings.Join(c.Endpoints(), ",")}, args...)
	return c.Client.Run(argv...)
}

// WaitReady waits until a write goes through (a leader with a quorum).
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if _, err = c.Etcdctl("put", "/etcdtest/ready", "1"); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("etcd cluster not ready within %s: %v", timeout, err)
}

// Leader returns the index of the member that leads, or an error.
func (c *Cluster) Leader() (int, error) {
	out, err := c.Etcdctl("endpoint", "status", "-w", "fields")
	if err != nil {
		return -1, err
	}
	// Per endpoint: "Endpoint" : "http://...", ..., "Leader" : N, "MemberID" : N
	var ep, member, leader string
	found := -1
	for line := range strings.SplitSeq(out, "\n") {
		k, v, ok := strings.Cut(line, " : ")
		if !ok {
			continue
		}
		k, v = strings.Trim(k, `" `), strings.Trim(v, `" `)
		switch k {
		case "Endpoint":
			ep = v
		case "MemberID":
			member = v
		case "Leader":
			leader = v
		}
		if ep != "" && member != "" && leader != "" {
			if member == leader {
				for i, e := range c.Endpoints() {
					if e == ep {
						found = i
					}
				}
			}
			ep, member, leader = "", "", ""
		}
	}
	if found < 0 {
		return -1, errors.New("no leader among the endpoints")
	}
	return found, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b
}
