// Package netnstest gives privileged tests their own network namespaces, so
// they never touch the host's interfaces, routes or sysctls, and never collide
// with tests of other packages running at the same time.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RequireRoot skips the test when it cannot create namespaces or load BPF
// (not root). Under CI=true (CI runs as root) it fails instead: a privileged
// test that skips in CI hides a broken test rig.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("privileged test needs root, and CI=true: refusing to skip")
	}
	t.Skip("needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN)")
}

// UniqueName returns prefix plus 6 random hex characters, short enough for
// an interface name (15 bytes) when prefix is at most 8 bytes.
func UniqueName(prefix string) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// NS is a named network namespace created for one test.
type NS struct {
	Name   string
	handle netns.NsHandle
}

// New creates a named network namespace (visible to `ip netns exec NAME`)
// with lo up, and deletes it in t.Cleanup.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	name := UniqueName("vt" + prefix)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		_ = exec.Command("ip", "netns", "del", name).Run()
		t.Fatalf("opening netns %s: %v", name, err)
	}
	ns := &NS{Name: name, handle: h}
	t.Cleanup(func() {
		h.Close()
		_ = exec.Command("ip", "netns", "pids", name).Run()
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Handle is the namespace's handle (valid until cleanup).
func (ns *NS) Handle() netns.NsHandle { return ns.handle }

// Do runs fn on a locked OS thread switched into the namespace, and restores
// the thread's namespace afterwards. Goroutines started by fn do NOT run in
// the namespace; sockets opened by fn stay in it.
func (ns *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("getting current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns.handle); err != nil {
		return fmt.Errorf("entering netns %s: %w", ns.Name, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// The thread is in the wrong namespace: never let the runtime
			// reuse it.
			runtime.Goexit()
		}
	}()
	return fn()
}

// Cmd returns an exec.Cmd that runs argv inside the namespace.
func (ns *NS) Cmd(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
}

// Run runs argv inside the namespace and returns its combined output.
func (ns *NS) Run(argv ...string) (string, error) {
	out, err := ns.Cmd(argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), ns.Name, err, out)
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (ns *NS) MustRun(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := ns.Run(argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Veth creates a veth pair with one end in a and the other in b (names unique
// per test), both up, and returns the two names. Deleting a namespace deletes
// its end, so no separate cleanup is needed.
func Veth(t testing.TB, a, b *NS) (string, string) {
	t.Helper()
	an, bn := UniqueName("va"), UniqueName("vb")
	out, err := exec.Command("ip", "link", "add", an, "netns", a.Name, "type", "veth",
		"peer", "name", bn, "netns", b.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("creating veth %s/%s: %v: %s", an, bn, err, out)
	}
	a.MustRun(t, "ip", "link", "set", an, "up")
	b.MustRun(t, "ip", "link", "set", bn, "up")
	return an, bn
}

// BPFFS returns a directory on a private bpffs mounted on a temporary
// directory, for pinning; it is unmounted in cleanup. Never a directory
// under the host's /sys/fs/bpf, even when that is a bpffs (systemd mounts
// one): a process started with `ip netns exec` gets a fresh /sys without
// that mount and could not see its pins, and tests stay off the host's
// pins.
func BPFFS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mounting a private bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting bpffs %s: %v", dir, err)
		}
	})
	return dir
}
