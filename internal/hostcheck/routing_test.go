package hostcheck

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bird"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/netnstest"
)

// fakeBird serves greeting on a unix socket in a temp dir, like BIRD's
// control socket, and returns the socket path.
func fakeBird(t *testing.T, greeting string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "bird.ctl")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(greeting))
			c.Close()
		}
	}()
	return sock
}

func TestBird(t *testing.T) {
	name := "BIRD control socket"
	good := fakeBird(t, "0001 BIRD 2.0.12 ready.\n")
	odd := fakeBird(t, "HTTP/1.0 400 Bad Request\r\n")
	gone := filepath.Join(t.TempDir(), "nobird.ctl")
	runCases(t, checkBird, []checkCase{{
		name: "answers", fixture: "veth", spec: Spec{RoutingMode: routing.ModeBirdOSPF, BirdSocket: good},
		want: Result{ID: "bird", Name: name, Status: Pass, Finding: good + ": BIRD 2.0.12"},
	}, {
		name: "not running", fixture: "veth", spec: Spec{RoutingMode: routing.ModeBirdOSPF, BirdSocket: gone},
		want: Result{ID: "bird", Name: name, Status: Fail,
			Finding: gone + ": dial unix " + gone + ": connect: no such file or directory",
			Fix:     "systemctl start bird, or: bird -u bird -g bird -c YOUR_BIRD_CONF -s " + gone},
	}, {
		name: "not BIRD", fixture: "veth", spec: Spec{RoutingMode: routing.ModeBirdOSPF, BirdSocket: odd},
		want: Result{ID: "bird", Name: name, Status: Fail,
			Finding: odd + `: unexpected greeting "HTTP/1.0 400 Bad Request"`,
			Fix:     "systemctl start bird, or: bird -u bird -g bird -c YOUR_BIRD_CONF -s " + odd},
	}, {
		name: "bgp mode", fixture: "veth", spec: Spec{RoutingMode: routing.ModeBGP},
		want: Result{ID: "bird", Name: name, Status: Skip, Finding: `routing mode "bgp", not bird-ospf`},
	}})
}

// TestBirdReal runs the installed BIRD inside a private namespace and reads
// its version from the real control socket.
func TestBirdReal(t *testing.T) {
	ns := netnstest.New(t, "bird")
	dir := t.TempDir()
	conf, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
	if err := os.WriteFile(conf, []byte("router id 192.0.2.1;\nprotocol device {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := ns.Cmd("bird", "-f", "-c", conf, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting bird: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	var got Result
	for {
		got = checkBird(context.Background(), System(), Spec{RoutingMode: routing.ModeBirdOSPF, BirdSocket: sock})
		if got.Status == Pass || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.Status != Pass || !strings.HasPrefix(got.Finding, sock+": BIRD 2.") {
		t.Fatalf("checkBird on a real BIRD = %+v", got)
	}
}

// TestProbeIgnoreMTU runs the installed (stock) BIRD: it rejects
// `ignoremtu`, which is "not supported", not an error.
func TestProbeIgnoreMTU(t *testing.T) {
	if _, err := exec.LookPath("bird"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bird not installed and CI=true: %v", err)
		}
		t.Skipf("bird not installed: %v", err)
	}
	ok, err := bird.ProbeIgnoreMTU(context.Background(), "bird")
	if err != nil || ok {
		t.Errorf("DefaultProbeIgnoreMTU(stock bird) = %t, %v; want false, nil", ok, err)
	}
	if _, err := bird.ProbeIgnoreMTU(context.Background(), filepath.Join(t.TempDir(), "nobird")); err == nil {
		t.Error("DefaultProbeIgnoreMTU(missing binary) succeeded, want an error")
	}
}

func TestBGPListen(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	busyAddr := busy.Addr().String()
	_, busyPort, _ := net.SplitHostPort(busyAddr)
	name := "BGP listen port free"
	runCases(t, checkBGPListen, []checkCase{{
		name: "free", fixture: "veth", spec: Spec{RoutingMode: routing.ModeBGP, BGPListen: freeAddr},
		want: Result{ID: "bgp-listen", Name: name, Status: Pass, Finding: freeAddr + " is free"},
	}, {
		name: "taken", fixture: "veth", spec: Spec{RoutingMode: routing.ModeBGP, BGPListen: busyAddr},
		want: Result{ID: "bgp-listen", Name: name, Status: Warn,
			Finding: busyAddr + ": listen tcp " + busyAddr + ": bind: address already in use (vipd itself if it is running, else another BGP daemon)",
			Fix:     "ss -ltnp 'sport = :" + busyPort + "'"},
	}, {
		name: "bird mode", fixture: "veth", spec: Spec{RoutingMode: routing.ModeBirdOSPF, BGPListen: busyAddr},
		want: Result{ID: "bgp-listen", Name: name, Status: Skip, Finding: `routing mode "bird-ospf", not bgp`},
	}})
}

func TestPeers(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"node":"n2","generation":1}`))
	}))
	defer ok.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer broken.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/state"
	down.Close()
	_, downPort, _ := net.SplitHostPort(strings.TrimPrefix(down.URL, "http://"))

	f := loadFixture(t, "veth")
	got := checkPeers(context.Background(), f, Spec{PeerStateURLs: []string{ok.URL + "/state"}})
	want := Result{ID: "peers", Name: "peer state URLs", Status: Pass, Finding: "all 1 reachable"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reachable peer (-want +got):\n%s", diff)
	}

	got = checkPeers(context.Background(), f, Spec{PeerStateURLs: []string{ok.URL + "/state", broken.URL + "/state", downURL}})
	want = Result{ID: "peers", Name: "peer state URLs", Status: Warn,
		Finding: "2 of 3 unreachable: " + broken.URL + "/state: HTTP 500; " + downURL + ": Get \"" + downURL +
			"\": dial tcp 127.0.0.1:" + downPort + ": connect: connection refused",
		Fix: "curl -sS " + broken.URL + "/state; curl -sS " + downURL}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("broken peers (-want +got):\n%s", diff)
	}

	got = checkPeers(context.Background(), f, Spec{})
	if got.Status != Skip {
		t.Errorf("no peers: %+v, want SKIP", got)
	}
}

// TestBirdFacts: with the routing.bird section the doctor says whether the
// running BIRD (not the binary on disk) has the ignoremtu patch and whether
// it can read vipd's file, and the fix for a dead BIRD names the file this
// node uses.
func TestBirdFacts(t *testing.T) {
	name := "BIRD control socket"
	good := fakeBird(t, "0001 BIRD 2.0.12 ready.\n")
	gone := filepath.Join(t.TempDir(), "nobird.ctl")
	full := &bird.Config{Mode: bird.ModeFull, ConfigFile: "/etc/bird/vipd-bird.conf"}
	include := &bird.Config{Mode: bird.ModeInclude, ConfigFile: "/etc/bird/vipd.conf"}
	facts := func(f bird.Facts, err error) func(context.Context) (bird.Facts, error) {
		return func(context.Context) (bird.Facts, error) { return f, err }
	}
	cannot := fmt.Errorf("bird: %s: Permission denied: %w", full.ConfigFile, bird.ErrBirdCannotRead)
	runCases(t, checkBird, []checkCase{{
		name: "patched and reading", fixture: "veth",
		spec: Spec{RoutingMode: routing.ModeBirdOSPF, BirdSocket: good, Bird: full,
			AskBird: facts(bird.Facts{IgnoreMTU: true, File: full.ConfigFile}, nil)},
		want: Result{ID: "bird", Name: name, Status: Pass,
			Finding: good + ": BIRD 2.0.12 (with the ignoremtu patch); it reads " + full.ConfigFile},
	}, {
		name: "stock, cannot read", fixture: "veth",
		spec: Spec{RoutingMode: routing.ModeBirdOSPF, BirdSocket: good, Bird: full,
			AskBird: facts(bird.Facts{File: full.ConfigFile, Reads: cannot}, nil)},
		want: Result{ID: "bird", Name: name, Status: Fail,
			Finding: good + ": BIRD 2.0.12 (stock: no ignoremtu); it cannot read " + full.ConfigFile + ": " + cannot.Error(),
			Fix:     "chgrp BIRD_GROUP /etc/bird && chmod g+rx /etc/bird (the group bird runs as: ls -l " + good + "), then vipd rewrites the file with that group"},
	}, {
		name: "dead, full mode", fixture: "veth", spec: Spec{RoutingMode: routing.ModeBirdOSPF, BirdSocket: gone, Bird: full},
		want: Result{ID: "bird", Name: name, Status: Fail,
			Finding: gone + ": dial unix " + gone + ": connect: no such file or directory",
			Fix:     "systemctl start bird, or: bird -u bird -g bird -c " + full.ConfigFile + " -s " + gone},
	}, {
		name: "dead, include mode", fixture: "veth", spec: Spec{RoutingMode: routing.ModeBirdOSPF, BirdSocket: gone, Bird: include},
		want: Result{ID: "bird", Name: name, Status: Fail,
			Finding: gone + ": dial unix " + gone + ": connect: no such file or directory",
			Fix:     "systemctl start bird, or: bird -u bird -g bird -c YOUR_BIRD_CONF (it includes " + include.ConfigFile + ") -s " + gone},
	}})
}

// TestBirdGuardCheck: the doctor warns while no guard holds its lock in
// the state directory, and passes once one does.
func TestBirdGuardCheck(t *testing.T) {
	dir := t.TempDir()
	s := Spec{RoutingMode: routing.ModeBirdOSPF, StateDir: dir, Bird: &bird.Config{GuardTimeout: 30 * time.Second}}
	if got := checkBirdGuard(context.Background(), nil, s); got.Status != Warn || got.Fix == "" {
		t.Errorf("no guard: %+v, want WARN with a fix", got)
	}
	f, err := os.Create(filepath.Join(dir, bird.GuardLockFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	got := checkBirdGuard(context.Background(), nil, s)
	if got.Status != Pass || !strings.Contains(got.Finding, "after 30s") {
		t.Errorf("a guard runs: %+v, want PASS naming the 30s bound", got)
	}
	if got := checkBirdGuard(context.Background(), nil, Spec{RoutingMode: routing.ModeBGP}); got.Status != Skip {
		t.Errorf("bgp mode: %+v, want SKIP", got)
	}
}
