package bgp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/routing"
)

// Environment of the helper process (TestHelperSpeaker).
const (
	envHelperConfig     = "VIPD_BGP_HELPER_CONFIG"
	envHelperRestarting = "VIPD_BGP_HELPER_RESTARTING"
	// envHelperRoutes, when set, is the JSON list of routes to announce
	// (default: every VIP of the config).
	envHelperRoutes = "VIPD_BGP_HELPER_ROUTES"
)

// TestHelperSpeaker is not a test: it is the vipd of TestGracefulRestartFRR,
// run in a child process so that it can be SIGKILLed like a vipd that exits
// for an upgrade (the kernel closes its sessions, no Cease is sent). It
// announces every VIP of its config, prints READY and waits to be killed.
func TestHelperSpeaker(t *testing.T) {
	raw := os.Getenv(envHelperConfig)
	if raw == "" {
		return // not run as a helper
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "helper: parsing config:", err)
		os.Exit(2)
	}
	var routes []routing.Route
	for _, v := range cfg.VIPs {
		routes = append(routes, routing.Route{Prefix: v.Prefix})
	}
	if raw := os.Getenv(envHelperRoutes); raw != "" {
		routes = nil
		if err := json.Unmarshal([]byte(raw), &routes); err != nil {
			fmt.Fprintln(os.Stderr, "helper: parsing routes:", err)
			os.Exit(2)
		}
	}
	s, err := New(cfg, hclog.New(&hclog.LoggerOptions{Name: "helper", Output: os.Stderr}))
	if err == nil {
		err = s.Start(context.Background(), StartOptions{Routes: routes, Restarting: os.Getenv(envHelperRestarting) == "1"})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	fmt.Println("READY")
	select {}
}

// startHelper runs TestHelperSpeaker with cfg in a child process and
// returns once it announced its routes. The child is killed at the end of
// the test if it still runs.
func startHelper(t *testing.T, cfg Config, restarting bool) *exec.Cmd {
	t.Helper()
	return startHelperRoutes(t, cfg, restarting, nil)
}

// startHelperRoutes is startHelper announcing routes (nil: every VIP).
func startHelperRoutes(t *testing.T, cfg Config, restarting bool, routes []routing.Route) *exec.Cmd {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSpeaker$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelperConfig+"="+string(raw))
	if restarting {
		cmd.Env = append(cmd.Env, envHelperRestarting+"=1")
	}
	if routes != nil {
		rr, err := json.Marshal(routes)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, envHelperRoutes+"="+string(rr))
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting helper speaker: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("helper (restarting=%v) stderr:\n%s", restarting, tail([]byte(stderr.String()), 30))
		}
	})
	sc := bufio.NewScanner(out)
	ready := make(chan bool, 1)
	go func() {
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("helper speaker exited before READY: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper speaker not READY after 30s")
	}
	return cmd
}

// TestGracefulRestartFRR: vipd is killed without Cease (upgrade restart);
// FRR, a graceful-restart helper, keeps the VIP marked stale; the new vipd
// re-announces it and the stale flag clears. The route must never go
// missing at FRR: a poller samples FRR's view throughout, and FRR's update
// log must show no withdraw or flap of the VIP.
func TestGracefulRestartFRR(t *testing.T) {
	pr := newPair(t)
	f := startFRR(t, pr, " bgp graceful-restart", nil)
	cfg := testConfig(pr, f.port, VIPRoute{vip4, attrsFull}, VIPRoute{vip6, attrsFull})
	cfg.GracefulRestart = GracefulRestart{Enabled: true, RestartTime: 60 * time.Second}

	old := startHelper(t, cfg, false)
	state := func() (present, stale bool) {
		paths := f.route(t, vip4)
		if len(paths) == 0 {
			return false, false
		}
		return true, paths[0].Stale
	}
	eventually(t, 20*time.Second, "VIP at FRR, not stale", func() bool {
		p, s := state()
		return p && !s
	})

	// Sample FRR's view of the VIP until the restart is over.
	var (
		mu                   sync.Mutex
		samples, missing     int
		sawStale, staleClear bool
	)
	stop := make(chan struct{})
	pollerDone := make(chan struct{})
	go func() {
		defer close(pollerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := exec.Command("vtysh", "--vty_socket", f.vtyDir, "-d", "bgpd", "-c",
				"show bgp ipv4 unicast "+vip4.String()+" json").Output()
			var doc struct {
				Paths []frrPath `json:"paths"`
			}
			if err != nil || json.Unmarshal(out, &doc) != nil {
				continue
			}
			mu.Lock()
			samples++
			switch {
			case len(doc.Paths) == 0:
				missing++
			case doc.Paths[0].Stale:
				sawStale = true
			case sawStale:
				staleClear = true
			}
			mu.Unlock()
		}
	}()

	if err := old.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "VIP stale at FRR after the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return sawStale
	})
	restarted := time.Now()
	startHelper(t, cfg, true)
	eventually(t, 30*time.Second, "stale flag cleared after the new speaker announced", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return staleClear
	})
	close(stop)
	<-pollerDone
	t.Logf("restart: %d samples of FRR's view, stale cleared %s after the new speaker started", samples, time.Since(restarted).Round(time.Millisecond))
	// FRR's update log tells a kept stale path ("duplicate ignored" when
	// the new speaker re-announces it) from a path that was dropped and
	// learned again ("withdrawn", or "flapped quicker than processing" when
	// the stale path was flushed because the new OPEN lacked the
	// restarting/forwarding bits). The poller above samples only every few
	// hundred milliseconds (each vtysh call is slow), so the log is the
	// fine-grained evidence.
	if lines := f.logLines(t, vip4.String(), "withdrawn", "flapped"); len(lines) > 0 {
		t.Errorf("FRR dropped the VIP during the restart:\n%s", strings.Join(lines, "\n"))
	}
	if missing > 0 {
		t.Errorf("FRR lost the VIP in %d of %d samples during the restart: a withdraw reached it", missing, samples)
	}
	if p, s := state(); !p || s {
		t.Errorf("after the restart FRR has the VIP present=%v stale=%v, want present and not stale", p, s)
	}
	if paths := f.route(t, vip6); len(paths) != 1 || paths[0].Stale {
		t.Errorf("after the restart FRR's IPv6 VIP paths = %+v, want one, not stale", paths)
	}
}

// TestRestartingWithNonGRPeer: a speaker started as restarting must not hold
// its routes back from a peer that does not do graceful restart (gobgpd
// here, GR not configured): GoBGP waits for End-of-RIB only from peers that
// announced the capability, so the VIP arrives as fast as on a fresh start,
// not after the deferral time.
func TestRestartingWithNonGRPeer(t *testing.T) {
	pr := newPair(t)
	g := startGoBGP(t, pr)
	cfg := testConfig(pr, g.port, VIPRoute{vip4, RouteAttrs{}})
	cfg.GracefulRestart = GracefulRestart{Enabled: true}
	s := startSpeaker(t, cfg, StartOptions{Routes: []routing.Route{{Prefix: vip4}}, Restarting: true})
	waitEstablished(t, s)
	eventually(t, deferralTime/2, "VIP at the non-GR peer", func() bool { return len(g.table(t)) == 1 })
}
