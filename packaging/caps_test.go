package packaging

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/daemon"
	"github.com/vipd/vipd/internal/e2e"
	"github.com/vipd/vipd/internal/netnstest"
)

// capsRig is vipd's node namespace with an uplink to a router namespace
// running gobgpd, and a private bpffs: enough for vipd to attach, bind,
// announce, exit for an upgrade and adopt.
type capsRig struct {
	t                   *testing.T
	bin, dir, pin, sock string
	router, node        *netnstest.NS
}

const capsVIP = "198.51.100.10"

func newCapsRig(t *testing.T) *capsRig {
	netnstest.RequireRoot(t)
	for _, tool := range []string{"setpriv", "gobgpd", "gobgp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps)", tool)
		}
	}
	bin, err := e2e.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	r := &capsRig{t: t, bin: bin, dir: t.TempDir()}
	r.router, r.node = netnstest.New(t, "cr"), netnstest.New(t, "cn")
	rv, nv := netnstest.Veth(t, r.router, r.node)
	r.router.MustRun(t, "ip", "addr", "add", "192.0.2.1/30", "dev", rv)
	r.node.MustRun(t, "ip", "link", "set", nv, "name", "up0")
	r.node.MustRun(t, "ip", "link", "set", "up0", "up")
	r.node.MustRun(t, "ip", "addr", "add", "192.0.2.2/30", "dev", "up0")
	gconf := filepath.Join(r.dir, "gobgpd.toml")
	os.WriteFile(gconf, []byte(`[global.config]
  as = 65000
  router-id = "192.0.2.1"
  port = 179
  local-address-list = ["192.0.2.1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "192.0.2.2"
    peer-as = 65001
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
`), 0o644)
	g := r.router.Cmd("gobgpd", "-f", gconf, "--api-hosts", "127.0.0.1:50051", "--pprof-disable")
	glog, _ := os.Create(filepath.Join(r.dir, "gobgpd.log"))
	g.Stdout, g.Stderr = glog, glog
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Process.Kill(); g.Wait() })
	r.pin = filepath.Join(netnstest.BPFFS(t), "vipd")
	r.sock = filepath.Join(r.dir, "vipd.sock")
	r.reset()
	return r
}

// config writes vipd's config; listenPort 0 makes GoBGP listen on 179.
func (r *capsRig) config(listenPort int) string {
	path := filepath.Join(r.dir, fmt.Sprintf("vipd-%d.toml", listenPort))
	os.WriteFile(path, []byte(fmt.Sprintf(`[node]
name = "n1"
underlay_v4 = "192.0.2.2"
[cluster]
seed = 1
poll_interval = "200ms"
poll_timeout = "100ms"
[[cluster.member]]
name = "n1"
underlay_v4 = "192.0.2.2"
state_url = "http://192.0.2.2:9180/state"
[[vip]]
address = %q
services = ["tcp/80"]
[vip.check]
type = "none"
[routing]
mode = "bgp"
[routing.bgp]
asn = 65001
listen_port = %d
listen_addresses = ["192.0.2.2"]
[[routing.bgp.neighbor]]
address = "192.0.2.1"
asn = 65000
local_address = "192.0.2.2"
[dataplane]
interface = "up0"
attach = "native"
pin_path = %q
[timers]
withdraw_grace = "1s"
table_grace = "1s"
drain_timeout = "1s"
[api]
socket = %q
`, capsVIP, listenPort, r.pin, r.sock)), 0o644)
	return path
}

// vipd is one vipd run under a capability bounding set, as systemd's
// CapabilityBoundingSet= leaves a root process.
type vipd struct {
	cmd    *exec.Cmd
	log    string
	exited chan error
}

func (r *capsRig) start(caps []string, cfg string) *vipd {
	r.t.Helper()
	var set []string
	for _, c := range caps {
		set = append(set, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	logPath := filepath.Join(r.dir, fmt.Sprintf("vipd-%d.log", time.Now().UnixNano()))
	lf, _ := os.Create(logPath)
	v := &vipd{log: logPath, exited: make(chan error, 1)}
	v.cmd = r.node.Cmd("setpriv", "--bounding-set", "-all,"+strings.Join(set, ","), "--inh-caps", "-all", "--",
		filepath.Join(r.bin, "vipd"), "-c", cfg)
	v.cmd.Stdout, v.cmd.Stderr = lf, lf
	if err := v.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() { v.exited <- v.cmd.Wait(); lf.Close() }()
	r.t.Cleanup(func() { v.cmd.Process.Kill() })
	return v
}

func (v *vipd) logText() string { b, _ := os.ReadFile(v.log); return string(b) }

func (r *capsRig) routerHasVIP() bool {
	out, _ := r.router.Run("gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib")
	return strings.Contains(out, capsVIP+"/32")
}

// serving waits until the VIP is at the router and bound on lo, or vipd
// exits; it returns vipd's exit error in that case.
func (r *capsRig) serving(v *vipd) (bool, error) {
	deadline := time.After(45 * time.Second)
	for {
		if r.routerHasVIP() {
			out, _ := r.node.Run("ip", "-4", "addr", "show", "dev", "lo")
			if strings.Contains(out, capsVIP+"/32") {
				return true, nil
			}
		}
		select {
		case err := <-v.exited:
			return false, err
		case <-deadline:
			// A goroutine dump says where it is stuck.
			v.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-v.exited:
			case <-time.After(2 * time.Second):
			}
			r.t.Fatalf("vipd neither served nor exited in 45s:\n%s", v.logText())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop signals vipd and waits for its exit: status 0 after SIGTERM (the
// drain), daemon.UpgradeExitStatus after SIGUSR2 (the upgrade exit the
// unit restarts).
func (r *capsRig) stop(v *vipd, sig syscall.Signal) {
	r.t.Helper()
	v.cmd.Process.Signal(sig)
	want := 0
	if sig == syscall.SIGUSR2 {
		want = daemon.UpgradeExitStatus
	}
	select {
	case err := <-v.exited:
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		if code != want {
			r.t.Fatalf("vipd exit after %v: %v, want status %d\n%s", sig, err, want, v.logText())
		}
	case <-time.After(60 * time.Second):
		r.t.Fatalf("vipd did not exit on %v", sig)
	}
}

// reset puts the node back as a fresh boot has it: nothing pinned or
// attached, and forwarding off on lo (vipd turns it on and leaves it on, so
// a later vipd without CAP_NET_ADMIN would otherwise get past the sysctl
// write and only fail, and retry forever, at binding the VIP on lo).
func (r *capsRig) reset() {
	os.RemoveAll(r.pin)
	r.node.Run("ip", "link", "set", "up0", "xdp", "off")
	r.node.Run("sysctl", "-qw", "net.ipv4.conf.lo.forwarding=0", "net.ipv6.conf.lo.forwarding=0")
	r.node.Run("ip", "addr", "del", capsVIP+"/32", "dev", "lo")
}

func without(caps []string, drop ...string) []string {
	var out []string
	for _, c := range caps {
		if !strings.Contains(strings.Join(drop, " "), c) {
			out = append(out, c)
		}
	}
	return out
}

// TestCapabilities runs the real vipd under exactly the unit's
// CapabilityBoundingSet, in a namespace with gobgpd as its router: it
// attaches, binds, announces, exits for an upgrade, adopts the pinned state
// and drains on SIGTERM. Then it takes capabilities away to show why each
// is in the set: the unit's comment says what each is for, this test holds
// it to that.
func TestCapabilities(t *testing.T) {
	r := newCapsRig(t)
	caps := readUnit(t, "vipd.service").capabilities()
	cfg := r.config(-1)

	t.Run("the unit's set suffices: start, upgrade exit, adopt, drain", func(t *testing.T) {
		r.t = t
		v := r.start(caps, cfg)
		if ok, err := r.serving(v); !ok {
			t.Fatalf("vipd under %v did not serve: %v\n%s", caps, err, v.logText())
		}
		r.stop(v, syscall.SIGUSR2)
		v = r.start(caps, cfg)
		if ok, err := r.serving(v); !ok {
			t.Fatalf("vipd under %v did not adopt: %v\n%s", caps, err, v.logText())
		}
		if !strings.Contains(v.logText(), "adopted pinned xdp link") {
			t.Errorf("the second vipd did not adopt the pinned link:\n%s", v.logText())
		}
		r.stop(v, syscall.SIGTERM)
		if r.routerHasVIP() {
			t.Error("SIGTERM left the route at the router")
		}
		r.reset()
	})

	for _, tc := range []struct {
		name    string
		caps    []string
		adopt   bool // the failure comes on the start that adopts
		listen  int
		wantErr string
	}{
		{"CAP_NET_ADMIN: the forwarding sysctl on lo, XDP, VIPs on lo", without(caps, "CAP_NET_ADMIN"), false, -1, "operation not permitted"},
		// EACCES from the load is the verifier's refusal (a missing
		// capability to load at all is EPERM); which unprivileged rule it
		// names first depends on the program ("pointer -= pointer
		// prohibited" since issue 11, "prohibited for !root" before).
		{"CAP_PERFMON: the verifier refuses the program without it", without(caps, "CAP_PERFMON", "CAP_SYS_ADMIN"), false, -1, "load program: permission denied"},
		{"CAP_SYS_ADMIN: adopting pinned tables (BPF_MAP_GET_FD_BY_ID)", without(caps, "CAP_SYS_ADMIN"), true, -1, "adopting pinned state"},
		{"CAP_NET_BIND_SERVICE: BGP on port 179", without(caps, "CAP_NET_BIND_SERVICE"), false, 0, "bind: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.t = t
			defer r.reset()
			cfg := r.config(tc.listen)
			v := r.start(tc.caps, cfg)
			ok, err := r.serving(v)
			if tc.adopt {
				if !ok {
					t.Fatalf("first start under %v failed: %v\n%s", tc.caps, err, v.logText())
				}
				r.stop(v, syscall.SIGUSR2)
				v = r.start(tc.caps, cfg)
				ok, err = r.serving(v)
			}
			if ok {
				r.stop(v, syscall.SIGTERM)
				t.Fatalf("vipd served under %v: the capability is not needed", tc.caps)
			}
			if err == nil || !strings.Contains(v.logText(), tc.wantErr) {
				t.Errorf("vipd under %v: exit %v, want an error with %q:\n%s", tc.caps, err, tc.wantErr, v.logText())
			}
			t.Logf("without it: %s", lastError(v.logText()))
		})
	}

	t.Run("CAP_NET_BIND_SERVICE suffices for port 179", func(t *testing.T) {
		r.t = t
		defer r.reset()
		v := r.start(caps, r.config(0))
		if ok, err := r.serving(v); !ok {
			t.Fatalf("vipd listening on 179 under %v: %v\n%s", caps, err, v.logText())
		}
		r.stop(v, syscall.SIGTERM)
	})
}

func lastError(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "[ERROR]") {
			if len(lines[i]) > 240 {
				return lines[i][:240] + "..."
			}
			return lines[i]
		}
	}
	return "(no error line)"
}
