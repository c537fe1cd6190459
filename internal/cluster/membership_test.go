package cluster

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

func TestMembershipObserve(t *testing.T) {
	var logs bytes.Buffer
	now := t0
	m := NewMembership(WithClock(func() time.Time { return now }),
		WithLogger(hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})))

	local := ComputeDigests(testSpec())
	m.SetLocal(local)
	spec := testSpec()
	spec.VIPs[0].Services = nil
	theirs := ComputeDigests(spec)

	st := docState("n2", 4, StateActive)
	st.Digests = theirs
	m.Observe("n2", Observation{Doc: &Signed{State: &st, Time: t0.Add(-time.Second), KeyID: "abcd0123"}, Revision: 17})
	m.Record("n2", &st)
	m.Observe("n3", Observation{Err: errors.New("connection refused")})
	m.Observe("n3", Observation{Err: ErrForged})
	m.Observe("n3", Observation{Err: ErrForged})
	m.Observe("n3", Observation{Err: ErrStale})
	now = now.Add(1500 * time.Millisecond)

	views := m.Views()
	want := []MemberView{
		{
			Name: "n2", Up: true, Generation: 4, Signature: "ok", KeyID: "abcd0123",
			SignedAt: t0.Add(-time.Second), LastSeen: t0, Lag: 1500 * time.Millisecond, Revision: 17,
			Digests: theirs, Differs: Differences{Config: []string{"vips 198.51.100.10 services"}},
		},
		{
			Name: "n3", Signature: "stale", Misses: 1, LastError: ErrStale.Error(),
			Rejected: map[Reason]uint64{ReasonForged: 2, ReasonStale: 1},
		},
	}
	if d := cmp.Diff(want, views); d != "" {
		t.Errorf("views (-want +got):\n%s", d)
	}
	if !strings.Contains(logs.String(), "member n2 differs: vips 198.51.100.10 services") {
		t.Errorf("no log line naming the difference:\n%s", logs.String())
	}
	// The views are copies.
	views[1].Rejected[ReasonForged] = 99
	views[0].Differs.Config[0] = "x"
	if v := m.Views(); v[1].Rejected[ReasonForged] != 2 || v[0].Differs.Config[0] == "x" {
		t.Error("a view shares its maps with the membership")
	}

	// This node takes the member's config: they agree, and it is logged.
	logs.Reset()
	m.SetLocal(theirs)
	if v := m.Views()[0]; !v.Differs.Empty() {
		t.Errorf("differences after agreeing: %v", v.Differs)
	}
	if !strings.Contains(logs.String(), "member agrees again") {
		t.Errorf("no log line on agreement:\n%s", logs.String())
	}
	// An unsigned document (no key here) says so.
	m.Observe("n2", Observation{Doc: &Signed{State: &st, Unsigned: true}})
	if v := m.Views()[0]; v.Signature != "unsigned" || v.KeyID != "" {
		t.Errorf("unsigned view: %+v", v)
	}
	m.Forget("n3")
	if got := len(m.Views()); got != 1 {
		t.Errorf("%d views after Forget", got)
	}
}

func TestMembershipBackend(t *testing.T) {
	now := t0
	m := NewMembership(WithClock(func() time.Time { return now }))
	m.SetBackend(BackendStatus{Backend: "etcd", Connected: true, Revision: 5})
	now = now.Add(time.Minute)
	m.SetBackend(BackendStatus{Backend: "etcd", Connected: true, Revision: 9})
	if b := m.Backend(); b.Since != t0 || b.Revision != 9 {
		t.Errorf("backend %+v: Since must not move while nothing changes", b)
	}
	m.SetBackend(BackendStatus{Backend: "etcd", Frozen: true, Revision: 9, Err: "no leader"})
	if b := m.Backend(); b.Since != now || !b.Frozen {
		t.Errorf("backend %+v", b)
	}
}
