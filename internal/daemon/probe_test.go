package daemon

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/dataplane"
)

// TestProberWiring: the daemon probes each member from its underlay
// address and the GUE port, to the member's GUE port, with checksum 0;
// status shows the probes (a member down by its state is "off", not
// judged); a reload with probe = false stops them.
func TestProberWiring(t *testing.T) {
	var mu sync.Mutex
	var specs []dataplane.ProbeSpec
	r, _ := newMetricsRig(t)
	r.probe = func(_ context.Context, s dataplane.ProbeSpec) (time.Duration, error) {
		mu.Lock()
		specs = append(specs, s)
		mu.Unlock()
		return 2 * time.Millisecond, nil
	}
	r.kill(r.d)
	r.startNode(Options{}, vipA)
	waitFor(t, "a probe", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(specs) > 0
	})
	mu.Lock()
	want := dataplane.ProbeSpec{Source: netip.MustParseAddr("192.0.2.11"), SourcePort: dataplane.DefaultGUEPort,
		Target: netip.MustParseAddrPort("192.0.2.12:19523"), ZeroChecksum: true}
	if got := specs[0]; got.Source != want.Source || got.SourcePort != want.SourcePort || got.Target != want.Target || !got.ZeroChecksum {
		t.Errorf("probe %+v, want %+v", got, want)
	}
	mu.Unlock()
	waitFor(t, "the probe in status", func() bool {
		st, _ := r.d.Status(context.Background())
		return st.Probes != nil && len(st.Probes.Members) == 2 && st.Probes.Members[1].RTTSeconds == 0.002
	})
	st, _ := r.d.Status(context.Background())
	if p := st.Probes; !p.On || p.IntervalSeconds != 1 || p.Members[0].Name != "n1" || !p.Members[0].Self ||
		p.Members[1].Name != "n2" || p.Members[1].State != "off" || p.Members[1].Demoted != "" {
		t.Errorf("probes %+v", p)
	}

	text, err := os.ReadFile(r.path)
	if err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(string(text), "[cluster]\n", "[cluster]\nprobe = false\n", 1)
	if err := os.WriteFile(r.path, []byte(off), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	st, _ = r.d.Status(context.Background())
	if p := st.Probes; p == nil || p.On || p.Members[0].State != "off" {
		t.Errorf("probes after probe = false: %+v", p)
	}
	mu.Lock()
	n := len(specs)
	mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(specs) != n {
		t.Errorf("%d probes sent after probes were turned off", len(specs)-n)
	}
}
