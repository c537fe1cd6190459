package bgp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
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

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/netnstest"
)

// Test rig: real gobgpd and FRR bgpd peers on loopback. Every test gets its
// own 127.x.y.0/24 pair of addresses and free ports, so tests and packages
// running in parallel never collide. The speaker connects actively; the
// peers are passive. Tests that start a Speaker do not run in parallel with
// each other: GoBGP servers in one process share package variables (see
// Speaker).

const (
	speakerASN = 65000
	peerASN    = 65001
)

// pair is the speaker's and the peer's loopback addresses of one test.
type pair struct{ speaker, peer netip.Addr }

func newPair(t testing.TB) pair {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	x, y := 1+b[0]%250, 1+b[1]%250
	return pair{
		speaker: netip.AddrFrom4([4]byte{127, x, y, 1}),
		peer:    netip.AddrFrom4([4]byte{127, x, y, 2}),
	}
}

func freePort(t testing.TB, addr netip.Addr) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatalf("probing a free port on %s: %v", addr, err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func requireBinary(t testing.TB, path string) {
	t.Helper()
	netnstest.RequireRoot(t) // daemons bind 127.x addresses and TCP MD5 needs CAP_NET_ADMIN
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed, and CI=true: refusing to skip", path)
		}
		t.Skipf("%s not installed", path)
	}
}

// startDaemon runs cmd until the test ends.
func startDaemon(t testing.TB, dir string, cmd *exec.Cmd) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, filepath.Base(cmd.Path)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", cmd.Path, tail(b, 40))
		}
	})
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// gobgpPeer is a gobgpd started for one test.
type gobgpPeer struct {
	addr    netip.Addr
	port    uint16
	apiPort uint16
}

// startGoBGP starts gobgpd peering passively with the speaker; password, if
// set, is the TCP MD5 password of the session.
func startGoBGP(t testing.TB, pr pair, password ...string) *gobgpPeer {
	t.Helper()
	requireBinary(t, "gobgpd")
	dir := t.TempDir()
	g := &gobgpPeer{addr: pr.peer, port: freePort(t, pr.peer), apiPort: freePort(t, pr.peer)}
	conf := fmt.Sprintf(`[global.config]
  as = %d
  router-id = "10.255.0.2"
  port = %d
  local-address-list = ["%s"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "%s"
    peer-as = %d
    auth-password = "%s"
  [neighbors.transport.config]
    passive-mode = true
    local-address = "%s"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
`, peerASN, g.port, pr.peer, pr.speaker, speakerASN, strings.Join(password, ""), pr.peer)
	f := filepath.Join(dir, "gobgpd.toml")
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dir, exec.Command("gobgpd", "-f", f, "-t", "toml", "-p",
		"--api-hosts", netip.AddrPortFrom(pr.peer, g.apiPort).String(), "--pprof-disable"))
	// Wait for the API so that the first query does not race the start.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", netip.AddrPortFrom(pr.peer, g.apiPort).String())
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gobgpd API did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return g
}

// gobgpRoute is one path as `gobgp global rib -j` prints it.
type gobgpRoute struct {
	Attrs []map[string]any `json:"attrs"`
}

// rib returns the peer's global RIB for one family ("ipv4" or "ipv6"),
// prefix -> paths.
func (g *gobgpPeer) rib(t testing.TB, family string) map[string][]gobgpRoute {
	t.Helper()
	out, err := exec.Command("gobgp", "-u", g.addr.String(), "-p", fmt.Sprint(g.apiPort),
		"global", "rib", "-a", family, "-j").Output()
	if err != nil {
		t.Fatalf("gobgp global rib -a %s: %v", family, err)
	}
	m := map[string][]gobgpRoute{}
	if len(bytes.TrimSpace(out)) == 0 || bytes.Equal(bytes.TrimSpace(out), []byte("null")) {
		return m
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("parsing gobgp rib: %v: %s", err, out)
	}
	return m
}

// frrPeer is an FRR bgpd started for one test, queried through its vty
// socket with vtysh.
type frrPeer struct {
	addr   netip.Addr
	port   uint16
	vtyDir string
}

// startFRR starts bgpd peering passively with the speaker. extra is added
// inside "router bgp"; v4net lists prefixes FRR itself announces.
func startFRR(t testing.TB, pr pair, extra string, v4net []netip.Prefix) *frrPeer {
	t.Helper()
	requireBinary(t, "/usr/lib/frr/bgpd")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	f := &frrPeer{addr: pr.peer, port: freePort(t, pr.peer), vtyDir: dir}
	var nets strings.Builder
	for _, p := range v4net {
		fmt.Fprintf(&nets, "  network %s\n", p)
	}
	conf := fmt.Sprintf(`log file %s/frr.log debugging
debug bgp updates
debug bgp neighbor-events
debug bgp graceful-restart
router bgp %d
 bgp router-id 10.255.0.3
 no bgp ebgp-requires-policy
 no bgp network import-check
%s
 neighbor %s remote-as %d
 neighbor %s passive
 neighbor %s timers 3 9
 address-family ipv4 unicast
%s exit-address-family
 address-family ipv6 unicast
  neighbor %s activate
 exit-address-family
`, dir, peerASN, extra, pr.speaker, speakerASN, pr.speaker, pr.speaker, nets.String(), pr.speaker)
	cf := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dir, exec.Command("/usr/lib/frr/bgpd", "-S", "-Z", "-f", cf,
		"-i", filepath.Join(dir, "bgpd.pid"), "--vty_socket", dir,
		"-A", "127.0.0.1", "-P", "0", "-p", fmt.Sprint(f.port), "-l", pr.peer.String()))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "bgpd.vty")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("FRR bgpd vty socket did not appear")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f
}

func (f *frrPeer) vtysh(t testing.TB, cmd string) []byte {
	t.Helper()
	out, err := exec.Command("vtysh", "--vty_socket", f.vtyDir, "-d", "bgpd", "-c", cmd).Output()
	if err != nil {
		t.Fatalf("vtysh -c %q: %v: %s", cmd, err, out)
	}
	return out
}

// frrPath is the part of FRR's route JSON the tests look at.
type frrPath struct {
	Valid  bool `json:"valid"`
	Stale  bool `json:"stale"`
	Metric *int `json:"metric"`
	Med    *int `json:"med"`
	ASPath struct {
		String string `json:"string"`
	} `json:"aspath"`
	Community *struct {
		String string `json:"string"`
	} `json:"community"`
	LargeCommunity *struct {
		String string `json:"string"`
	} `json:"largeCommunity"`
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
}

// routes returns FRR's table for family ("ipv4"/"ipv6"): prefix -> paths.
func (f *frrPeer) routes(t testing.TB, family string) map[string][]frrPath {
	t.Helper()
	var doc struct {
		Routes map[string][]frrPath `json:"routes"`
	}
	out := f.vtysh(t, fmt.Sprintf("show bgp %s unicast json", family))
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("parsing FRR routes: %v: %s", err, out)
	}
	return doc.Routes
}

// route returns FRR's detailed view of one prefix (nil when absent).
func (f *frrPeer) route(t testing.TB, p netip.Prefix) []frrPath {
	t.Helper()
	fam := "ipv4"
	if p.Addr().Is6() {
		fam = "ipv6"
	}
	var doc struct {
		Paths []frrPath `json:"paths"`
	}
	out := f.vtysh(t, fmt.Sprintf("show bgp %s unicast %s json", fam, p))
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("parsing FRR route: %v: %s", err, out)
	}
	return doc.Paths
}

// eventually polls cond every interval until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testConfig is a speaker config peering with the peer of pr on port.
func testConfig(pr pair, port uint16, vips ...VIPRoute) Config {
	return Config{
		ASN:        speakerASN,
		RouterID:   netip.MustParseAddr("10.255.0.1"),
		ListenPort: -1,
		NextHop4:   netip.MustParseAddr("192.0.2.1"),
		NextHop6:   netip.MustParseAddr("2001:db8::1"),
		Neighbors: []Neighbor{{
			Address:      pr.peer,
			ASN:          peerASN,
			Port:         port,
			LocalAddress: pr.speaker,
			HoldTime:     9 * time.Second,
			Keepalive:    3 * time.Second,
		}},
		VIPs: vips,
	}
}

// testLogger logs into a buffer that is printed if the test fails. GoBGP's
// goroutines may still log after the test returned, when t.Log would panic.
func testLogger(t testing.TB) hclog.Logger {
	w := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			w.mu.Lock()
			t.Logf("speaker log:\n%s", tail(w.buf.Bytes(), 60))
			w.mu.Unlock()
		}
	})
	return hclog.New(&hclog.LoggerOptions{Name: "bgp", Level: hclog.Info, Output: w})
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logBuffer) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

// startSpeaker starts a Speaker for cfg and closes it at the end of the
// test.
func startSpeaker(t testing.TB, cfg Config, opts StartOptions) *Speaker {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(context.Background(), opts); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// waitEstablished waits until every neighbor of s is established.
func waitEstablished(t testing.TB, s *Speaker) {
	t.Helper()
	eventually(t, 20*time.Second, "BGP sessions established", func() bool {
		ps, err := s.Peers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.State != "established" {
				return false
			}
		}
		return len(ps) > 0
	})
}

func netnsRequired(t testing.TB) { netnstest.RequireRoot(t) }

// logLines returns the lines of FRR's debug log that contain must and any of
// anyOf.
func (f *frrPeer) logLines(t testing.TB, must string, anyOf ...string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.vtyDir, "frr.log"))
	if err != nil {
		t.Fatalf("reading FRR's log: %v", err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, must) {
			continue
		}
		for _, a := range anyOf {
			if strings.Contains(l, a) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// vtyConn speaks to FRR bgpd's vty socket directly, as vtysh does (a
// command ending in NUL; the answer ends in three NULs and a status
// byte): a query takes a millisecond or two where a vtysh process takes
// ~150 ms, so a poller can sample FRR's RIB every ~10 ms.
type vtyConn struct {
	c  net.Conn
	rd *bufio.Reader
}

func (f *frrPeer) dialVty(t testing.TB) *vtyConn {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(f.vtyDir, "bgpd.vty"))
	if err != nil {
		t.Fatalf("connecting to FRR's vty socket: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &vtyConn{c: c, rd: bufio.NewReader(c)}
}

// query runs one command and returns its output.
func (v *vtyConn) query(cmd string) ([]byte, error) {
	if err := v.c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := v.c.Write(append([]byte(cmd), 0)); err != nil {
		return nil, err
	}
	var out []byte
	for {
		b, err := v.rd.ReadByte()
		if err != nil {
			return out, err
		}
		out = append(out, b)
		if n := len(out); n >= 4 && out[n-4] == 0 && out[n-3] == 0 && out[n-2] == 0 {
			if st := out[n-1]; st != 0 {
				return out[:n-4], fmt.Errorf("vty %q: status %d: %s", cmd, st, out[:n-4])
			}
			return out[:n-4], nil
		}
	}
}
