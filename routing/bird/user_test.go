package bird

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/netnstest"
	"github.com/vipd/vipd/routing"
)

// birdUser returns the uid and gid of Debian's bird user (bird2 creates
// it), skipping when there is none.
func birdUser(t *testing.T) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("bird")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no bird user and CI=true: apt-get install bird2: %v", err)
		}
		t.Skipf("no bird user (apt-get install bird2): %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// traversable lets other users through dir and its parent (t.TempDir
// makes both 0700), as /etc is.
func traversable(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBirdAsItsOwnUser runs BIRD as Debian runs it (`-u bird -g bird`)
// on a directory laid out as Debian's /etc/bird (bird:bird 0750): the file
// vipd writes gets bird:bird 0640, BIRD reads it at start and on every
// apply. In a directory of root's (root:root 0750) the apply fails saying
// BIRD cannot read the file, never "rejected", and the error points at the
// directory's owner.
func TestBirdAsItsOwnUser(t *testing.T) {
	netnstest.RequireRoot(t)
	requireBird(t)
	uid, gid := birdUser(t)
	base := t.TempDir()
	traversable(t, base)
	etc, run := filepath.Join(base, "etc"), filepath.Join(base, "run")
	for _, d := range []string{etc, run} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(run, 0o775)
	ns := netnstest.New(t, "bu")
	cfg := Config{
		ConfigFile: filepath.Join(etc, "bird.conf"),
		Socket:     filepath.Join(run, "bird.ctl"),
		RouterID:   netip.MustParseAddr("10.99.0.1"),
		Debounce:   time.Millisecond,
		OSPF: []OSPF{{Version: 2, Areas: []Area{{ID: "0",
			Interfaces: []Interface{{Name: "lo", Stub: true}}}}}},
		VIPs: []VIPRoute{{Prefix: vipA}, {Prefix: vipB}},
	}
	// The bootstrap: the first file, announcing nothing, written before
	// BIRD starts, as `vipctl bird-config -o` does.
	first, err := Render(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(cfg.ConfigFile, first); err != nil {
		t.Fatal(err)
	}
	checkOwner(t, cfg.ConfigFile, uid, gid)
	startBirdIn(t, ns, "bird", cfg.ConfigFile, run, "-u", "bird", "-g", "bird")

	ctx := context.Background()
	a, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Abandon()
	if _, err := a.SetRoutes(ctx, []routing.Route{{Prefix: vipA}}); err != nil {
		t.Fatalf("SetRoutes with bird running as bird: %v", err)
	}
	checkOwner(t, cfg.ConfigFile, uid, gid)
	out, err := runCmd("birdc", "-s", cfg.Socket, "show", "route", "protocol", StaticV4)
	if err != nil || !strings.Contains(out, vipA.String()) {
		t.Fatalf("bird does not run the new routes: %v: %s", err, out)
	}
	if peers, err := a.Peers(ctx); err != nil || len(peers) < 1 || !peers[0].Up {
		t.Errorf("Peers = %+v, %v; want bird up first", peers, err)
	}

	// A directory of root's: the file is root's too, BIRD cannot read it.
	closed := filepath.Join(base, "closed")
	if err := os.Mkdir(closed, 0o750); err != nil {
		t.Fatal(err)
	}
	bad := cfg
	bad.ConfigFile = filepath.Join(closed, "bird.conf")
	b, err := New(ctx, bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abandon()
	_, err = b.SetRoutes(ctx, []routing.Route{{Prefix: vipB}})
	var ce *ConfigError
	if !errors.Is(err, ErrBirdCannotRead) || errors.As(err, &ce) {
		t.Errorf("SetRoutes from a directory bird cannot read = %v, want ErrBirdCannotRead (not a *ConfigError)", err)
	}
	if applyFailure(err) != "bird cannot read the generated config" {
		t.Errorf("logged as %q", applyFailure(err))
	}
	// The failed apply removed its file (there was no good one to put
	// back); the doctor finds the same with one in place.
	if err := WriteAtomic(bad.ConfigFile, first); err != nil {
		t.Fatal(err)
	}
	facts, err := AskRunning(ctx, bad)
	if err != nil || !errors.Is(facts.Reads, ErrBirdCannotRead) || facts.IgnoreMTU {
		t.Errorf("AskRunning on the closed directory = %+v, %v; want Reads ErrBirdCannotRead, no ignoremtu", facts, err)
	}
	facts, err = AskRunning(ctx, cfg)
	if err != nil || facts.Reads != nil {
		t.Errorf("AskRunning on the bird directory = %+v, %v; want it read", facts, err)
	}
}

func checkOwner(t *testing.T, file string, uid, gid int) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != 0o640 {
		t.Errorf("%s: %d:%d %v, want %d:%d -rw-r-----", file, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
	}
}
