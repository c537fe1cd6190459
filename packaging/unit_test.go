package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/daemon"
)

// unit is a parsed systemd unit: section -> key -> values, in order (a key
// may repeat, and an empty assignment resets it, as systemd reads it).
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot read %q", path, line)
			}
			if v == "" {
				u[section][k] = nil
				continue
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// capabilities returns the bounding set, e.g. [CAP_BPF CAP_NET_ADMIN].
func (u unit) capabilities() []string {
	var out []string
	for _, v := range u["Service"]["CapabilityBoundingSet"] {
		out = append(out, strings.Fields(v)...)
	}
	slices.Sort(out)
	return out
}

// timespan parses the systemd time spans the unit uses ("90s", "6min", "2h").
func timespan(t *testing.T, s string) time.Duration {
	t.Helper()
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"min", time.Minute}, {"ms", time.Millisecond}, {"s", time.Second}, {"h", time.Hour}, {"", time.Second}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			if v, err := strconv.Atoi(n); err == nil {
				return time.Duration(v) * u.d
			}
		}
	}
	t.Fatalf("cannot read time span %q", s)
	return 0
}

func TestUnit(t *testing.T) {
	u := readUnit(t, "vipd.service")
	for _, kv := range [][3]string{
		{"Service", "Type", "notify"},
		{"Service", "NotifyAccess", "main"},
		{"Service", "ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service", "Restart", "on-failure"},
		{"Service", "KillMode", "mixed"},
		{"Service", "StateDirectory", "vipd"},
		{"Service", "RuntimeDirectory", "vipd"},
		{"Service", "RuntimeDirectoryPreserve", "yes"},
		{"Service", "LimitMEMLOCK", "infinity"},
		// vipd's upgrade exit status (daemon.UpgradeExitStatus): restarted
		// at once, and not a failure.
		{"Service", "RestartForceExitStatus", strconv.Itoa(daemon.UpgradeExitStatus)},
		{"Service", "SuccessExitStatus", strconv.Itoa(daemon.UpgradeExitStatus)},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := u.get(kv[0], kv[1]); got != kv[2] {
			t.Errorf("[%s] %s=%q, want %q", kv[0], kv[1], got, kv[2])
		}
	}
	if w := timespan(t, u.get("Service", "WatchdogSec")); w < 10*time.Second || w > 2*time.Minute {
		t.Errorf("WatchdogSec=%v: the event loop is fed every WatchdogSec/2; keep it 10s-2min", w)
	}
	want := []string{"CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_PERFMON", "CAP_SYS_ADMIN"}
	if got := u.capabilities(); !slices.Equal(got, want) {
		t.Errorf("CapabilityBoundingSet %v, want %v (TestCapabilities shows why each)", got, want)
	}
	// The config's socket directory must be the unit's RuntimeDirectory.
	if !strings.HasPrefix(config.DefaultPath, "/etc/vipd/") || !strings.Contains(u.get("Service", "ExecStart"), "-c "+config.DefaultPath) {
		t.Errorf("ExecStart %q does not name %s", u.get("Service", "ExecStart"), config.DefaultPath)
	}
}

// TestStopTimeoutRule: systemd must not SIGKILL vipd in the middle of the
// drain SIGTERM starts. TimeoutStopSec > -shutdown-timeout >= the default
// withdraw grace + drain timeout + table grace.
func TestStopTimeoutRule(t *testing.T) {
	u := readUnit(t, "vipd.service")
	f := strings.Fields(u.get("Service", "ExecStart"))
	i := slices.Index(f, "-shutdown-timeout")
	if i < 0 || i+1 >= len(f) {
		t.Fatalf("ExecStart %q does not set -shutdown-timeout: the unit's stop timeout must be written next to it", f)
	}
	shutdown, err := time.ParseDuration(f[i+1])
	if err != nil {
		t.Fatal(err)
	}
	stop := timespan(t, u.get("Service", "TimeoutStopSec"))
	drain := config.DefaultWithdrawGrace + config.DefaultDrainTimeout + config.DefaultTableGrace
	if !(stop > shutdown && shutdown >= drain) {
		t.Errorf("TimeoutStopSec %v > -shutdown-timeout %v >= withdraw+drain+table grace %v does not hold", stop, shutdown, drain)
	}
	if stop-shutdown < 30*time.Second {
		t.Errorf("TimeoutStopSec leaves %v after the drain to close sessions and the dataplane; want >= 30s", stop-shutdown)
	}
	t.Logf("TimeoutStopSec %v > -shutdown-timeout %v >= default drain %v", stop, shutdown, drain)
}

// TestSystemdAnalyzeVerify runs systemd's own offline check on the unit and
// on the unit with the bird-ospf drop-in. verify insists that ExecStart
// exists, so it points at a stand-in; man: links are checked on the built
// package (scripts/package-check.sh).
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd; make deps installs it)")
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "vipd")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("vipd.service")
	if err != nil {
		t.Fatal(err)
	}
	unitPath := filepath.Join(dir, "vipd.service")
	os.WriteFile(unitPath, []byte(strings.ReplaceAll(string(data), "/usr/sbin/vipd", stub)), 0o644)
	if out, err := exec.Command(sa, "verify", "--man=no", unitPath).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify vipd.service: %v\n%s", err, out)
	}
	dropin := filepath.Join(dir, "vipd.service.d")
	os.MkdirAll(dropin, 0o755)
	bird, _ := os.ReadFile("bird-ospf.conf")
	os.WriteFile(filepath.Join(dropin, "bird-ospf.conf"), bird, 0o644)
	// Drop-ins are read only from the unit search path.
	cmd := exec.Command(sa, "verify", "--man=no", unitPath)
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify with the bird-ospf drop-in: %v\n%s", err, out)
	}

	// bird-ospf mode's other two units: the guard, and the drop-in that
	// gives Debian's bird.service (a stand-in here) its ExecStartPre.
	guard, err := os.ReadFile("vipd-bird-guard.service")
	if err != nil {
		t.Fatal(err)
	}
	guardPath := filepath.Join(dir, "vipd-bird-guard.service")
	os.WriteFile(guardPath, []byte(strings.ReplaceAll(string(guard), "/usr/bin/vipctl", stub)), 0o644)
	os.WriteFile(filepath.Join(dir, "bird.service"), []byte("[Service]\nExecStart="+stub+"\n"), 0o644)
	birdDropin := filepath.Join(dir, "bird.service.d")
	os.MkdirAll(birdDropin, 0o755)
	pre, err := os.ReadFile("bird-vipd.conf")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(birdDropin, "vipd.conf"), []byte(strings.ReplaceAll(string(pre), "/usr/bin/vipctl", stub)), 0o644)
	for _, u := range []string{guardPath, filepath.Join(dir, "bird.service")} {
		cmd := exec.Command(sa, "verify", "--man=no", u)
		cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(u), err, out)
		}
	}
	g := readUnit(t, "vipd-bird-guard.service")
	if got := g["Service"]["ExecStart"]; len(got) != 1 || !strings.Contains(got[0], "vipctl bird-guard") {
		t.Errorf("the guard runs %q, want vipctl bird-guard", got)
	}
	if got := readUnit(t, "bird-vipd.conf")["Service"]["ExecStartPre"]; len(got) != 1 || !strings.Contains(got[0], "--unless-running") || strings.HasPrefix(got[0], "-") {
		t.Errorf("bird.service's ExecStartPre is %q: want bird-config --unless-running, failing BIRD's start if it fails", got)
	}
}
