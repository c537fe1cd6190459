package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/vip"
)

// notifySocket is systemd's side of sd_notify: a unix datagram socket
// named in NOTIFY_SOCKET, as systemd creates it for a Type=notify unit.
type notifySocket struct {
	t    *testing.T
	msgs chan string
}

// listenNotify creates the socket and points NOTIFY_SOCKET (and, with
// watchdog > 0, WATCHDOG_USEC and WATCHDOG_PID) at it for this test.
func listenNotify(t *testing.T, watchdog time.Duration) *notifySocket {
	t.Helper()
	// sun_path holds 108 bytes: t.TempDir() paths can be longer.
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	if watchdog > 0 {
		t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	}
	n := &notifySocket{t: t, msgs: make(chan string, 4096)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n
}

// expect returns the first message, of those arriving within timeout,
// that has every one of lines; it fails the test if none comes.
func (n *notifySocket) expect(timeout time.Duration, lines ...string) string {
	n.t.Helper()
	deadline := time.After(timeout)
	var seen []string
	for {
		select {
		case m := <-n.msgs:
			seen = append(seen, m)
			if hasLines(m, lines...) {
				return m
			}
		case <-deadline:
			n.t.Fatalf("no message with %q within %v; got %q", lines, timeout, seen)
			return ""
		}
	}
}

func hasLines(m string, lines ...string) bool {
	have := strings.Split(m, "\n")
	for _, want := range lines {
		found := false
		for _, h := range have {
			if h == want || strings.HasSuffix(want, "*") && strings.HasPrefix(h, strings.TrimSuffix(want, "*")) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// count returns how many messages equal to want arrive within d (others
// are dropped).
func (n *notifySocket) count(d time.Duration, want string) int {
	deadline := time.After(d)
	c := 0
	for {
		select {
		case m := <-n.msgs:
			if m == want {
				c++
			}
		case <-deadline:
			return c
		}
	}
}

// TestNotifyLifecycle: what systemd is told over a real NOTIFY_SOCKET:
// READY=1 once the node is up, RELOADING=1 (with the monotonic time) then
// READY=1 around every reload with the outcome in STATUS=, and at SIGTERM
// STOPPING=1 and a STATUS= line per drain step.
func TestNotifyLifecycle(t *testing.T) {
	sd := listenNotify(t, 0)
	r := newRig(t, vipA)
	sd.expect(5*time.Second, "READY=1", "STATUS=serving: node n1, 1 VIPs, routing bgp")

	r.write(vipA, vipB)
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	sd.expect(5*time.Second, "RELOADING=1", "MONOTONIC_USEC=*")
	sd.expect(5*time.Second, "READY=1", "STATUS=serving: config reloaded, 2 VIPs")

	if err := os.WriteFile(r.path, []byte("[node"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(); err == nil {
		t.Fatal("a broken config reloaded")
	}
	sd.expect(5*time.Second, "RELOADING=1", "MONOTONIC_USEC=*")
	sd.expect(5*time.Second, "READY=1", "STATUS=reload refused, the previous config keeps running: *")
	if st := r.status(); st.LastReload == nil || st.LastReload.OK || st.LastReload.Error == "" {
		t.Errorf("status after a refused reload: last_reload %+v", st.LastReload)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	sd.expect(time.Second, "STOPPING=1", "STATUS=draining before exit")
	sd.expect(time.Second, "STATUS=draining before exit: *")
	sd.expect(time.Second, "STATUS=drained: closing the routing sessions")
}

// TestUpgradeExitNotify: the upgrade exit says so, with its exit status,
// and does not say STOPPING=1: for systemd it is a restart.
func TestUpgradeExitNotify(t *testing.T) {
	sd := listenNotify(t, 0)
	r := newRig(t, vipA)
	sd.expect(5*time.Second, "READY=1", "STATUS=serving: *")
	if err := r.d.Abandon(); err != nil {
		t.Fatal(err)
	}
	m := sd.expect(time.Second, "STATUS=exiting for an upgrade (status 75): *")
	if strings.Contains(m, "STOPPING=1") {
		t.Errorf("the upgrade exit told systemd it stops: %q", m)
	}
}

// TestWatchdogFedByTheLoop: WATCHDOG=1 flows while the controller's event
// loop completes passes, stops when the loop wedges inside a side effect
// that never returns (so systemd would kill and restart vipd), and comes
// back once the loop moves again.
func TestWatchdogFedByTheLoop(t *testing.T) {
	const wd = 200 * time.Millisecond
	sd := listenNotify(t, wd)
	r := newIdleRig(t)
	logs := &syncWriter{}
	r.startNode(Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})}, vipA)
	r.waitAnnounced(vipA)
	sd.expect(5*time.Second, "READY=1", "STATUS=serving: *")
	if n := sd.count(time.Second, "WATCHDOG=1"); n < 3 {
		t.Fatalf("%d WATCHDOG=1 in 1s with a %v watchdog, want at least 3", n, wd)
	}

	// Wedge the loop: programming the VIP a reload adds never returns.
	wedge := make(chan struct{})
	r.dp.mu.Lock()
	r.dp.wedge = wedge
	r.dp.mu.Unlock()
	r.write(vipA, vipB)
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	// What was in flight when it wedged may still arrive.
	sd.count(wd, "WATCHDOG=1")
	if n := sd.count(3*wd, "WATCHDOG=1"); n != 0 {
		t.Fatalf("%d WATCHDOG=1 while the loop is wedged, want none (systemd would never kill it)", n)
	}
	waitFor(t, "the starving watchdog logged", func() bool {
		return strings.Contains(logs.String(), "the systemd watchdog is no longer fed")
	})

	close(wedge)
	if n := sd.count(time.Second, "WATCHDOG=1"); n < 2 {
		t.Errorf("%d WATCHDOG=1 after the loop moved again, want it fed again", n)
	}
	r.waitAnnounced(vipA, vipB)
}

// syncWriter is a log sink tests read while the daemon writes.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestPhaseEnds: a drain's time left, by the timers of the phases left.
func TestPhaseEnds(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	w, d, tg := 3*time.Second, time.Minute, 10*time.Second
	for _, tc := range []struct {
		phase     vip.Phase
		end, last time.Duration // from t0; -1: none
	}{
		{vip.PhaseActive, -1, -1},
		{vip.PhaseWithdrawing, w, w + d + tg},
		{vip.PhaseDraining, d, d + tg},
		{vip.PhaseInactive, tg, tg},
		{vip.PhaseDrained, -1, -1},
	} {
		end, last := phaseEnds(tc.phase, t0, w, d, tg)
		at := func(x time.Duration) time.Time {
			if x < 0 {
				return time.Time{}
			}
			return t0.Add(x)
		}
		if !end.Equal(at(tc.end)) || !last.Equal(at(tc.last)) {
			t.Errorf("%s: ends %v, drain ends %v; want %v, %v", tc.phase, end, last, at(tc.end), at(tc.last))
		}
	}
}

// TestWatchdogDuringShutdown: feeding the watchdog changes nothing the
// controller decides: through a SIGTERM drain (with the watchdog asking the
// loop for passes all along) the node's phase only moves forward, to
// drained, and never reads active again.
func TestWatchdogDuringShutdown(t *testing.T) {
	listenNotify(t, 100*time.Millisecond)
	r := newIdleRig(t)
	r.edit = func(s string) string {
		return strings.Replace(s, `drain_timeout = "100ms"`, `drain_timeout = "600ms"`, 1)
	}
	r.startNode(Options{}, vipA)
	r.waitAnnounced(vipA)
	past, events, stop := r.d.Events(0)
	defer stop()
	if len(past) != 0 {
		t.Fatalf("replayed %v", past)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var phases []string
	for {
		select {
		case e := <-events:
			if e.What == "phase" {
				phases = append(phases, e.To)
			}
			continue
		default:
		}
		break
	}
	if len(phases) == 0 || phases[len(phases)-1] != "drained" || slices.Contains(phases, "active") {
		t.Errorf("phases through the shutdown %v: want forward to drained, never active", phases)
	}
}
