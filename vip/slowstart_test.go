package vip

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/cluster"
)

func TestRampWeight(t *testing.T) {
	from := epoch
	const slow = 80 * time.Second
	for _, tt := range []struct {
		w    uint32
		at   time.Duration
		want uint32
	}{
		{100, -5 * time.Second, 6}, // a ramp in this node's future: first step
		{100, 0, 6},
		{100, 10*time.Second - 1, 6},
		{100, 10 * time.Second, 18},
		{100, 40 * time.Second, 56},
		{100, 79 * time.Second, 93},
		{100, slow, 100},
		{100, time.Hour, 100},
		{1, 0, 1}, // never 0
		{400, 0, 25},
	} {
		if got := rampWeight(tt.w, from, from.Add(tt.at), slow); got != tt.want {
			t.Errorf("weight %d at %s: %d, want %d", tt.w, tt.at, got, tt.want)
		}
	}
	if got := rampWeight(100, time.Time{}, from, slow); got != 100 {
		t.Errorf("no ramp_from: %d, want the whole weight", got)
	}
	if got := rampWeight(100, from, from, 0); got != 100 {
		t.Errorf("slow start off: %d, want the whole weight", got)
	}
	// rampNext gives the steps where rampWeight turns: 8 of them.
	var steps []time.Duration
	for at := from.Add(-time.Second); ; {
		next := rampNext(from, at, slow)
		if next.IsZero() {
			break
		}
		if rampWeight(100, from, next.Add(-1), slow) == rampWeight(100, from, next, slow) {
			t.Errorf("weight does not change at step %s", next.Sub(from))
		}
		steps = append(steps, next.Sub(from))
		at = next
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, 40 * time.Second, 50 * time.Second, 60 * time.Second, 70 * time.Second, 80 * time.Second}
	if d := cmp.Diff(want, steps); d != "" {
		t.Errorf("steps (-want +got):\n%s", d)
	}
}

// weightsOf maps the rig's programmed table of vip4 to backend name ->
// role/weight, for comparing directors.
func weightsOf(r *rig) map[string]string {
	out := map[string]string{}
	for _, b := range r.w.programs[vip4].Backends {
		out[b.Name] = b.Role.String() + "/" + itoa(b.Weight)
	}
	return out
}

func itoa(w uint32) string { return strconv.FormatUint(uint64(w), 10) }

// TestSlowStartRampSteps: a peer that joins with ramp_from T is ramped in
// eight table rebuilds, each at T + k*slow/8 by this director's clock; the
// row move is a table change like a return (the old primaries stay second
// hops: dataplane's weight tests). Undraining this node ramps it again.
func TestSlowStartRampSteps(t *testing.T) {
	cfg := testConfig()
	cfg.SlowStart = 80 * time.Second
	cfg.Members[1].Weight = 200
	r := newRig(t, cfg)
	old := epoch.Add(-time.Hour)
	b := peerState("b", cluster.StateActive, true, vip4, vip6)
	for a, s := range b.VIPs {
		s.RampFrom = old
		b.VIPs[a] = s
	}
	r.m.setPeers(map[string]*cluster.NodeState{"b": b}, 0)
	r.run(time.Minute)
	if got := weightsOf(r)["b"]; got != "primary/"+itoa(200) {
		t.Fatalf("b long up: %s, want its whole weight 200", got)
	}
	// c joins: it published ramp_from 2s before this director hears it.
	join := r.clock.Now().Add(-2 * time.Second)
	c := peerState("c", cluster.StateActive, true, vip4, vip6)
	for a, s := range c.VIPs {
		s.RampFrom = join
		c.VIPs[a] = s
	}
	r.m.setPeers(map[string]*cluster.NodeState{"c": c}, 0)
	r.step()
	var got []uint32
	var at []time.Duration
	for range 200 {
		w := r.w.programs[vip4].Backends
		if len(got) == 0 || got[len(got)-1] != w[2].Weight {
			got = append(got, w[2].Weight)
			at = append(at, r.clock.Now().Sub(join))
		}
		next := r.m.nextWake()
		if next.IsZero() {
			break
		}
		r.clock.Set(next)
		r.step()
	}
	wantW := []uint32{6, 18, 31, 43, 56, 68, 81, 93, 100}
	wantAt := []time.Duration{2 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, 40 * time.Second, 50 * time.Second, 60 * time.Second, 70 * time.Second, 80 * time.Second}
	if d := cmp.Diff(wantW, got); d != "" {
		t.Errorf("c's weights (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantAt, at); d != "" {
		t.Errorf("c's steps after ramp_from (-want +got):\n%s", d)
	}

	// This node published its own ramp_from at bring-up and is at full
	// weight a minute later; a node drain and undrain ramps it again.
	if r.m.nodeState().VIPs[vip4].RampFrom.IsZero() {
		t.Fatal("a primary with slow start publishes no ramp_from")
	}
	r.m.nodeDrain = true
	r.run(5 * time.Minute)
	if s := r.m.nodeState().VIPs[vip4]; s.State == cluster.StateActive || !s.RampFrom.IsZero() {
		t.Fatalf("drained: published %+v, want no ramp_from", s)
	}
	r.m.nodeDrain = false
	r.step()
	r.step()
	s := r.m.nodeState().VIPs[vip4]
	if s.State != cluster.StateActive || !s.RampFrom.Equal(r.clock.Now()) {
		t.Fatalf("undrained: published %+v at %s, want active with ramp_from now", s, r.clock.Now())
	}
	if w := r.w.programs[vip4].Backends[0]; w.Name != "a" || w.Weight != 6 {
		t.Errorf("undrained a in its own table: %+v, want weight 6 (the first step of 100)", w)
	}
	r.run(80 * time.Second)
	if w := r.w.programs[vip4].Backends[0]; w.Weight != 100 {
		t.Errorf("a after the slow start: weight %d, want 100", w.Weight)
	}
}

// TestSlowStartSameTableEveryDirector: two directors given the same
// documents build the same table at every moment, though one hears the
// joining member 3s after the other (its poll landed later).
func TestSlowStartSameTableEveryDirector(t *testing.T) {
	cfgA := testConfig()
	cfgA.SlowStart = 40 * time.Second
	cfgA.Members[2].Weight = 300
	cfgB := cfgA
	cfgB.Node = "b"
	ra, rb := newRig(t, cfgA), newRig(t, cfgB)
	// Bring both up knowing each other, then long after, c joins.
	for range 3 {
		ra.m.setPeers(map[string]*cluster.NodeState{"b": docOf(rb), "c": nil}, 0)
		rb.m.setPeers(map[string]*cluster.NodeState{"a": docOf(ra), "c": nil}, 0)
		ra.run(time.Minute)
		rb.run(time.Minute)
	}
	join := ra.clock.Now()
	c := peerState("c", cluster.StateActive, true, vip4, vip6)
	for a, s := range c.VIPs {
		s.RampFrom = join
		c.VIPs[a] = s
	}
	ra.m.setPeers(map[string]*cluster.NodeState{"c": c}, 0)
	ra.step()
	rb.run(3 * time.Second)
	rb.m.setPeers(map[string]*cluster.NodeState{"c": c.Clone()}, 0)
	ra.run(3 * time.Second)
	for i := range 50 {
		ra.run(time.Second)
		rb.run(time.Second)
		if !ra.clock.Now().Equal(rb.clock.Now()) {
			t.Fatalf("clocks apart: %s, %s", ra.clock.Now(), rb.clock.Now())
		}
		if d := cmp.Diff(weightsOf(ra), weightsOf(rb)); d != "" {
			t.Fatalf("%ds after c's ramp_from: tables differ (-a +b):\n%s", 3+i+1, d)
		}
	}
	if w := weightsOf(ra)["c"]; w != "primary/"+itoa(300) {
		t.Errorf("c after its slow start: %s, want 300", w)
	}
}

// docOf is the document a rig's node publishes, as its peers receive it.
func docOf(r *rig) *cluster.NodeState {
	st := r.m.nodeState()
	return &st
}
