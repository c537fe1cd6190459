package bird

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/routing"
)

// TestGuard: the guard leaves the routes alone while a vipd holds the
// state directory and for the timeout after it left; then it withdraws
// them once (file rewritten, BIRD reconfigured); a vipd back resets it; a
// file that announces nothing is left alone; a BIRD that is down gets the
// file for its next start.
func TestGuard(t *testing.T) {
	fc := newFakeControl(t, configureOK)
	cfg := v4Config()
	cfg.ConfigFile = filepath.Join(t.TempDir(), "bird.conf")
	cfg.Socket = fc.path
	announced := []routing.Route{{Prefix: vipA}, {Prefix: vipB}}
	write := func() {
		t.Helper()
		data, err := Render(cfg, announced)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteAtomic(cfg.ConfigFile, data); err != nil {
			t.Fatal(err)
		}
	}
	inFile := func() []routing.Route {
		t.Helper()
		data, err := os.ReadFile(cfg.ConfigFile)
		if err != nil {
			t.Fatal(err)
		}
		return routesInFile(data)
	}
	write()
	var held atomic.Bool
	held.Store(true)
	g, err := NewGuard(GuardConfig{Bird: cfg, Timeout: 10 * time.Second, Held: func() (bool, error) { return held.Load(), nil }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return now }
	ctx := context.Background()
	step := func(d time.Duration) {
		now = now.Add(d)
		g.Step(ctx)
	}

	step(0)
	held.Store(false) // vipd killed
	step(time.Second)
	step(9 * time.Second) // 9 s since it left
	if got := inFile(); len(got) != 2 || fc.count("configure") != 0 {
		t.Fatalf("before the timeout: routes %v, %d configures; want both routes, none", got, fc.count("configure"))
	}
	step(time.Second) // 10 s
	if got := inFile(); len(got) != 0 || fc.count("configure") != 1 || !g.Withdrawn() {
		t.Fatalf("at the timeout: routes %v, %d configures, withdrawn %v; want none, one, true", got, fc.count("configure"), g.Withdrawn())
	}
	step(time.Minute)
	if fc.count("configure") != 1 {
		t.Errorf("the guard reconfigured again with nothing left to withdraw")
	}

	// A vipd comes back and announces; it dies again: a new timeout.
	held.Store(true)
	step(time.Second)
	write()
	held.Store(false)
	step(time.Second)
	step(5 * time.Second)
	if got := inFile(); len(got) != 2 {
		t.Fatalf("5 s after the second death: routes %v, want both", got)
	}
	step(5 * time.Second)
	if got := inFile(); len(got) != 0 || fc.count("configure") != 2 {
		t.Fatalf("after the second timeout: routes %v, %d configures; want none, two", got, fc.count("configure"))
	}

	// vipd exited cleanly (SIGTERM): the file announces nothing already.
	held.Store(true)
	step(time.Second)
	held.Store(false)
	step(time.Second)
	step(20 * time.Second)
	if fc.count("configure") != 2 || !g.Withdrawn() {
		t.Errorf("nothing to withdraw, yet %d configures (want 2), withdrawn %v", fc.count("configure"), g.Withdrawn())
	}

	// BIRD is down when the timeout passes: the file is rewritten for its
	// next start, and that counts as withdrawn.
	held.Store(true)
	step(time.Second)
	write()
	held.Store(false)
	g.cfg.Bird.Socket = filepath.Join(t.TempDir(), "gone.ctl")
	step(time.Second)
	step(11 * time.Second)
	if got := inFile(); len(got) != 0 || !g.Withdrawn() {
		t.Errorf("BIRD down: routes %v, withdrawn %v; want none, true", got, g.Withdrawn())
	}
	data, _ := os.ReadFile(cfg.ConfigFile)
	want, _ := Render(cfg, nil)
	if d := cmp.Diff(string(want), string(data)); d != "" {
		t.Errorf("the guard's file is not vipd's file without routes (-want +got):\n%s", d)
	}
}
