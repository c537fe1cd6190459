package cluster

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

var errLost = errors.New("no answer")

// probeRig feeds a policy rounds of results with a fake clock.
type probeRig struct {
	t   *testing.T
	p   *ProbePolicy
	now time.Time
	up  map[string]bool
}

func newProbeRig(t *testing.T, up ...string) *probeRig {
	r := &probeRig{t: t, p: NewProbePolicy("n1", 3, 2), now: time.Unix(1_800_000_000, 0), up: map[string]bool{}}
	for _, n := range up {
		r.up[n] = true
	}
	return r
}

// round runs one round: outcome maps member -> answered.
func (r *probeRig) round(outcome map[string]bool) (map[string]string, bool) {
	r.now = r.now.Add(time.Second)
	res := map[string]ProbeResult{}
	for n, ok := range outcome {
		if ok {
			res[n] = ProbeResult{RTT: time.Millisecond}
		} else {
			res[n] = ProbeResult{Err: errLost}
		}
	}
	return r.p.Round(r.now, res, r.up)
}

func TestProbePolicyHysteresis(t *testing.T) {
	r := newProbeRig(t, "n2", "n3")
	bad := map[string]bool{"n2": false, "n3": true}
	good := map[string]bool{"n2": true, "n3": true}
	start := r.now
	for i := 1; i <= 2; i++ {
		if d, _ := r.round(bad); len(d) != 0 {
			t.Fatalf("after %d failures demoted %v, want none before 3", i, d)
		}
	}
	// An answer in between restarts the run.
	r.round(good)
	for i := 1; i <= 2; i++ {
		r.round(bad)
	}
	d, changed := r.round(bad)
	if diff := cmp.Diff(map[string]string{"n2": "GUE path to n2 failing"}, d); diff != "" || !changed {
		t.Fatalf("after 3 failures in a row (-want +got):\n%s changed %v", diff, changed)
	}
	st := r.p.Status(r.up, true)
	n2 := st.Members[1]
	if n2.Name != "n2" || n2.State != ProbeFailing || n2.Demoted != ProbeReason("n2") || n2.Failures != 5 || n2.LastError != errLost.Error() {
		t.Errorf("n2 view %+v", n2)
	}
	// Failing since the first failure of the run, the 4th round.
	if want := start.Add(4 * time.Second); !n2.Since.Equal(want) {
		t.Errorf("failing since %v, want %v", n2.Since, want)
	}
	if _, changed := r.round(bad); changed {
		t.Error("another failure changed the demotions")
	}
	// One answer is not enough to restore; two are.
	if d, _ := r.round(good); len(d) != 1 {
		t.Fatalf("restored after one answer: %v", d)
	}
	if d, changed := r.round(good); len(d) != 0 || !changed {
		t.Fatalf("after two answers %v (changed %v), want restored", d, changed)
	}
	if st := r.p.Status(r.up, true); st.Members[1].State != ProbeOK || st.Members[1].RTT != time.Millisecond {
		t.Errorf("n2 after restore %+v", st.Members[1])
	}
}

func TestProbePolicySelf(t *testing.T) {
	r := newProbeRig(t, "n2", "n3")
	var d map[string]string
	for range 3 {
		d, _ = r.round(map[string]bool{"n2": false, "n3": false})
	}
	if diff := cmp.Diff(map[string]string{"n1": "GUE path to this node failing"}, d); diff != "" {
		t.Fatalf("every peer failing (-want +got):\n%s", diff)
	}
	st := r.p.Status(r.up, true)
	if st.Members[0].Name != "n1" || !st.Members[0].Self || st.Members[0].State != ProbeFailing || st.Note != "" {
		t.Errorf("self view %+v note %q", st.Members[0], st.Note)
	}
	// One peer answering again: the fault is that of the other.
	for range 2 {
		d, _ = r.round(map[string]bool{"n2": false, "n3": true})
	}
	if diff := cmp.Diff(map[string]string{"n2": "GUE path to n2 failing"}, d); diff != "" {
		t.Fatalf("n3 answering again (-want +got):\n%s", diff)
	}
}

// TestProbePolicyNeverAll: with one peer up, failing probes demote nobody
// (that would leave only this node, no better proven) and say so.
func TestProbePolicyNeverAll(t *testing.T) {
	r := newProbeRig(t, "n2")
	var d map[string]string
	for range 4 {
		d, _ = r.round(map[string]bool{"n2": false, "n3": false})
	}
	if len(d) != 0 {
		t.Fatalf("demoted %v, want none", d)
	}
	if st := r.p.Status(r.up, true); st.Note != ReasonProbeAll || st.Members[1].State != ProbeFailing {
		t.Errorf("status %+v, want the note and n2 failing", st)
	}
}

// TestProbePolicyDownByState: a member down by its state is not judged by
// its probes: neither demoted nor counted in the self rule, and its run
// starts afresh when it is up again.
func TestProbePolicyDownByState(t *testing.T) {
	r := newProbeRig(t, "n2", "n3")
	r.up["n4"] = false
	for range 5 {
		r.round(map[string]bool{"n2": true, "n3": true, "n4": false})
	}
	d, _ := r.round(map[string]bool{"n2": true, "n3": true, "n4": false})
	if len(d) != 0 {
		t.Fatalf("demoted %v, want none: n4 is down by its state", d)
	}
	if v := r.p.Status(r.up, true).Members[3]; v.Name != "n4" || v.State != ProbeOff || v.Failures != 6 {
		t.Errorf("n4 view %+v", v)
	}
	r.up["n4"] = true
	for i := 1; i <= 3; i++ {
		d, _ = r.round(map[string]bool{"n2": true, "n3": true, "n4": false})
		if (len(d) != 0) != (i == 3) {
			t.Fatalf("n4 up, %d failures: demoted %v", i, d)
		}
	}
	// Down peers do not count toward "every peer fails" either.
	r.up["n4"] = false
	for range 3 {
		d, _ = r.round(map[string]bool{"n2": false, "n3": true, "n4": false})
	}
	if diff := cmp.Diff(map[string]string{"n2": ProbeReason("n2")}, d); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestProberRun: the prober probes every target concurrently each
// interval and reports demotions once per change.
func TestProberRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		broken := map[string]bool{"n3": true}
		var reports []map[string]string
		policy := NewProbePolicy("n1", 3, 2)
		p := NewProber(hclog.NewNullLogger(), ProberConfig{
			Interval: time.Second, Timeout: 500 * time.Millisecond,
			Targets: func() ([]ProbeTarget, map[string]bool) {
				return []ProbeTarget{{"n2", netip.MustParseAddr("192.0.2.2")}, {"n3", netip.MustParseAddr("192.0.2.3")}},
					map[string]bool{"n2": true, "n3": true}
			},
			Probe: func(ctx context.Context, tg ProbeTarget) (time.Duration, error) {
				mu.Lock()
				b := broken[tg.Name]
				mu.Unlock()
				if b {
					<-ctx.Done()
					return 0, ctx.Err()
				}
				time.Sleep(3 * time.Millisecond)
				return 3 * time.Millisecond, nil
			},
			Demote: func(d map[string]string) {
				mu.Lock()
				reports = append(reports, d)
				mu.Unlock()
			},
		}, policy)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		time.Sleep(2500 * time.Millisecond) // rounds at 0, 1, 2 s
		synctest.Wait()
		st := policy.Status(map[string]bool{"n2": true, "n3": true}, true)
		if st.Members[2].State != ProbeFailing || st.Members[1].RTT != 3*time.Millisecond {
			t.Errorf("status %+v", st)
		}
		mu.Lock()
		broken["n3"] = false
		mu.Unlock()
		time.Sleep(2 * time.Second)
		cancel()
		<-done
		want := []map[string]string{{"n3": ProbeReason("n3")}, {}}
		if diff := cmp.Diff(want, reports); diff != "" {
			t.Errorf("reports (-want +got):\n%s", diff)
		}
		// The policy outlives the prober: a restart keeps its runs.
		if d := policy.Demoted(); len(d) != 0 {
			t.Errorf("after Run: demoted %v", d)
		}
		if st := policy.Status(nil, false); st.Members[0].State != ProbeOff {
			t.Errorf("probes off: %+v", st)
		}
	})
}
