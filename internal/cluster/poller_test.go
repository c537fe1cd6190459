package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/health"
)

// fakePeer serves a scripted state document.
type fakePeer struct {
	mu    sync.Mutex
	mode  string // ok | 500 | badjson | wrongnode | hang | redirect | huge | flap | bump
	st    NodeState
	polls int
}

func newFakePeer(t *testing.T, node string) (*fakePeer, *httptest.Server) {
	t.Helper()
	f := &fakePeer{mode: "ok", st: NodeState{
		Node:       node,
		Generation: 1,
		VIPs:       map[netip.Addr]VIPState{netip.MustParseAddr("192.0.2.10"): {State: StateActive, Healthy: true}},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakePeer) set(mode string, change func(*NodeState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = mode
	if change != nil {
		change(&f.st)
	}
}

func (f *fakePeer) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

func (f *fakePeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.polls++
	mode, st := f.mode, f.st.Clone()
	if mode == "flap" && f.polls%2 == 0 {
		mode = "500"
	}
	if mode == "bump" {
		f.st.Generation++
	}
	f.mu.Unlock()
	switch mode {
	case "500":
		http.Error(w, "boom", http.StatusInternalServerError)
	case "badjson":
		w.Write([]byte(`{"node": "` + st.Node + `", "generation": `))
	case "wrongnode":
		st.Node = "someone-else"
		json.NewEncoder(w).Encode(st)
	case "hang":
		<-r.Context().Done()
	case "redirect":
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	case "huge": // valid JSON, but over the size limit
		w.Write([]byte(`{"node":"` + st.Node + `","pad":"`))
		w.Write(bytes.Repeat([]byte("x"), maxStateBody))
		w.Write([]byte(`"}`))
	default:
		json.NewEncoder(w).Encode(st)
	}
}

type peerReport struct {
	Node string
	St   *NodeState
}

// startPoller runs a Poller until the test ends; cleanup cancels it and
// fails the test if Run does not return. It also fails the test if report
// is ever called concurrently.
func startPoller(t *testing.T, members []Member, opts PollOptions) <-chan peerReport {
	t.Helper()
	reports := make(chan peerReport, 1000)
	var inReport atomic.Int32
	p := NewPoller(hclog.NewNullLogger(), members, opts, func(node string, st *NodeState) {
		if inReport.Add(1) != 1 {
			t.Errorf("report called concurrently")
		}
		defer inReport.Add(-1)
		reports <- peerReport{node, st}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Poller.Run did not return after cancel")
		}
	})
	return reports
}

func nextPeerReport(t *testing.T, reports <-chan peerReport) peerReport {
	t.Helper()
	select {
	case r := <-reports:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no peer report within 10s")
		return peerReport{}
	}
}

// noPeerReport fails if a report arrives before the peer has been polled n
// more times.
func noPeerReport(t *testing.T, reports <-chan peerReport, f *fakePeer, n int) {
	t.Helper()
	start := f.pollCount()
	deadline := time.Now().Add(10 * time.Second)
	for f.pollCount() < start+n {
		select {
		case r := <-reports:
			t.Fatalf("unexpected report %s %+v", r.Node, r.St)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer polled %d times in 10s, want %d", f.pollCount()-start, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	select {
	case r := <-reports:
		t.Fatalf("unexpected report %s %+v", r.Node, r.St)
	default:
	}
}

var fastPoll = PollOptions{Interval: 10 * time.Millisecond, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3}

func TestPollerLifecycle(t *testing.T) {
	checkNoGoroutineLeak(t)
	f, srv := newFakePeer(t, "n2")
	reports := startPoller(t, []Member{{Name: "n2", URL: srv.URL + "/state"}}, fastPoll)

	want := f.st.Clone()
	if diff := cmp.Diff(peerReport{"n2", want}, nextPeerReport(t, reports)); diff != "" {
		t.Fatalf("first report (-want +got):\n%s", diff)
	}
	if n := f.pollCount(); n < fastPoll.Rise {
		t.Errorf("reported up after %d polls, want at least rise=%d", n, fastPoll.Rise)
	}
	noPeerReport(t, reports, f, 5) // same document: nothing to say

	f.set("ok", func(st *NodeState) {
		st.Generation = 2
		st.VIPs[netip.MustParseAddr("192.0.2.10")] = VIPState{State: StateDraining, Healthy: true}
	})
	want = f.st.Clone()
	if diff := cmp.Diff(peerReport{"n2", want}, nextPeerReport(t, reports)); diff != "" {
		t.Fatalf("report after a new generation (-want +got):\n%s", diff)
	}

	// Same generation, other content (a restarted peer counting from 1
	// again could do this): still reported.
	f.set("ok", func(st *NodeState) {
		st.VIPs[netip.MustParseAddr("192.0.2.11")] = VIPState{State: StateActive}
	})
	want = f.st.Clone()
	if diff := cmp.Diff(peerReport{"n2", want}, nextPeerReport(t, reports)); diff != "" {
		t.Fatalf("report after a content change (-want +got):\n%s", diff)
	}

	f.set("500", nil)
	before := f.pollCount()
	if diff := cmp.Diff(peerReport{"n2", nil}, nextPeerReport(t, reports)); diff != "" {
		t.Fatalf("report after failures (-want +got):\n%s", diff)
	}
	if n := f.pollCount() - before; n < fastPoll.Fall {
		t.Errorf("reported failed after %d misses, want at least fall=%d", n, fastPoll.Fall)
	}
	noPeerReport(t, reports, f, 5) // failed is reported once

	f.set("ok", func(st *NodeState) { st.Generation = 3 })
	want = f.st.Clone()
	if diff := cmp.Diff(peerReport{"n2", want}, nextPeerReport(t, reports)); diff != "" {
		t.Fatalf("report after recovery (-want +got):\n%s", diff)
	}
}

// Every way a poll can miss counts as a miss: the peer is reported failed
// (once), never up.
func TestPollerMisses(t *testing.T) {
	for _, mode := range []string{"500", "badjson", "wrongnode", "hang", "redirect", "huge", "refused"} {
		t.Run(mode, func(t *testing.T) {
			checkNoGoroutineLeak(t)
			f, srv := newFakePeer(t, "n2")
			f.set(mode, nil)
			url := srv.URL + "/state"
			if mode == "refused" {
				url = "http://" + closedPort(t) + "/state"
			}
			opts := fastPoll
			opts.Timeout = 20 * time.Millisecond // for "hang"; a miss either way
			opts.Interval = 30 * time.Millisecond
			reports := startPoller(t, []Member{{Name: "n2", URL: url}}, opts)
			if diff := cmp.Diff(peerReport{"n2", nil}, nextPeerReport(t, reports)); diff != "" {
				t.Fatalf("report (-want +got):\n%s", diff)
			}
			if mode != "refused" {
				noPeerReport(t, reports, f, 3)
			}
		})
	}
}

// A peer that answers every other poll never reaches rise nor fall: no
// report at all before it is up, and no failure while it is up.
func TestPollerFlappingPeer(t *testing.T) {
	f, srv := newFakePeer(t, "n2")
	f.set("flap", nil)
	reports := startPoller(t, []Member{{Name: "n2", URL: srv.URL + "/state"}}, PollOptions{
		Interval: 10 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 2,
	})
	noPeerReport(t, reports, f, 10)

	f.set("ok", nil)
	if got := nextPeerReport(t, reports); got.St == nil || got.St.Generation != 1 {
		t.Fatalf("report = %+v, want the peer up at generation 1", got)
	}
	f.set("flap", nil)
	noPeerReport(t, reports, f, 10)
}

// Peers are polled concurrently, a hanging one does not hold up the others,
// and each peer's reports arrive in order.
func TestPollerPeersIndependentAndOrdered(t *testing.T) {
	checkNoGoroutineLeak(t)
	var members []Member
	for _, name := range []string{"n1", "n2", "n3"} {
		f, srv := newFakePeer(t, name)
		f.set("bump", nil) // a new generation on every poll
		members = append(members, Member{Name: name, URL: srv.URL + "/state"})
	}
	hung, hsrv := newFakePeer(t, "n4")
	hung.set("hang", nil)
	members = append(members, Member{Name: "n4", URL: hsrv.URL + "/state"})

	opts := PollOptions{Interval: 10 * time.Millisecond, Timeout: 2 * time.Second, Rise: 1, Fall: 3}
	reports := startPoller(t, members, opts)
	last := map[string]uint64{}
	for len(last) < 3 || last["n1"] < 10 || last["n2"] < 10 || last["n3"] < 10 {
		r := nextPeerReport(t, reports)
		if r.St == nil {
			t.Fatalf("peer %s reported failed", r.Node)
		}
		if r.Node == "n4" {
			t.Fatalf("hanging peer reported %+v", r.St)
		}
		if r.St.Generation <= last[r.Node] {
			t.Fatalf("peer %s: generation %d after %d: out of order", r.Node, r.St.Generation, last[r.Node])
		}
		last[r.Node] = r.St.Generation
	}
}

func TestPeerStateNext(t *testing.T) {
	doc := func(gen uint64) *NodeState {
		return &NodeState{Node: "n2", Generation: gen, VIPs: map[netip.Addr]VIPState{}}
	}
	type out struct {
		Report bool
		Gen    int64 // -1 = nil (failed)
	}
	tests := []struct {
		name  string
		polls []*NodeState
		want  []out
	}{
		{"up after rise", []*NodeState{doc(1), doc(1), doc(1)}, []out{{false, 0}, {true, 1}, {false, 0}}},
		{"new generations while up", []*NodeState{doc(1), doc(1), doc(2), doc(2), doc(3)}, []out{{false, 0}, {true, 1}, {true, 2}, {false, 0}, {true, 3}}},
		{"generation changing before rise reports the latest", []*NodeState{doc(1), doc(2)}, []out{{false, 0}, {true, 2}}},
		{"failed after fall, once", []*NodeState{nil, nil, nil, nil}, []out{{false, 0}, {false, 0}, {true, -1}, {false, 0}}},
		{"misses below fall keep the peer", []*NodeState{doc(1), doc(1), nil, nil, doc(1)}, []out{{false, 0}, {true, 1}, {false, 0}, {false, 0}, {false, 0}}},
		{"new generation after a miss", []*NodeState{doc(1), doc(1), nil, doc(2)}, []out{{false, 0}, {true, 1}, {false, 0}, {true, 2}}},
		{"down then up", []*NodeState{doc(1), doc(1), nil, nil, nil, doc(1), doc(1)}, []out{{false, 0}, {true, 1}, {false, 0}, {false, 0}, {true, -1}, {false, 0}, {true, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := peerState{h: health.Hysteresis{Rise: 2, Fall: 3}}
			var got []out
			for _, d := range tt.polls {
				if d != nil {
					ps.lastGood = d
				}
				st, rep := ps.next(d != nil)
				o := out{Report: rep}
				if rep {
					ps.last = st
					o.Gen = -1
					if st != nil {
						o.Gen = int64(st.Generation)
					}
				}
				got = append(got, o)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reports (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeNodeState(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    *NodeState
		wantErr error
	}{
		{
			name: "full",
			doc:  `{"node":"n2","generation":5,"vips":{"192.0.2.10":{"state":"active","healthy":true},"2001:db8::1":{"state":"inactive","healthy":false,"reason":"draining"}}}`,
			want: &NodeState{Node: "n2", Generation: 5, VIPs: map[netip.Addr]VIPState{
				netip.MustParseAddr("192.0.2.10"):  {State: StateActive, Healthy: true},
				netip.MustParseAddr("2001:db8::1"): {State: StateInactive, Reason: "draining"},
			}},
		},
		{
			name: "unknown fields are tolerated",
			doc:  `{"node":"n2","generation":1,"version":"2.0","vips":{"192.0.2.10":{"state":"draining","weight":3}}}`,
			want: &NodeState{Node: "n2", Generation: 1, VIPs: map[netip.Addr]VIPState{
				netip.MustParseAddr("192.0.2.10"): {State: StateDraining},
			}},
		},
		{"no vips", `{"node":"n2","generation":1}`, &NodeState{Node: "n2", Generation: 1, VIPs: map[netip.Addr]VIPState{}}, nil},
		{"null vips", `{"node":"n2","generation":1,"vips":null}`, &NodeState{Node: "n2", Generation: 1, VIPs: map[netip.Addr]VIPState{}}, nil},
		{"wrong node", `{"node":"n3","generation":1}`, nil, ErrWrongNode},
		{"missing node", `{"generation":1}`, nil, ErrBadDocument},
		{"unknown state", `{"node":"n2","vips":{"192.0.2.10":{"state":"up"}}}`, nil, ErrBadDocument},
		{"missing state", `{"node":"n2","vips":{"192.0.2.10":{"healthy":true}}}`, nil, ErrBadDocument},
		{"bad address", `{"node":"n2","vips":{"192.0.2.300":{"state":"active"}}}`, nil, ErrBadDocument},
		{"empty address", `{"node":"n2","vips":{"":{"state":"active"}}}`, nil, ErrBadDocument},
		{"zoned address", `{"node":"n2","vips":{"fe80::1%eth0":{"state":"active"}}}`, nil, ErrBadDocument},
		{"mapped address", `{"node":"n2","vips":{"::ffff:192.0.2.1":{"state":"active"}}}`, nil, ErrBadDocument},
		{"negative generation", `{"node":"n2","generation":-1}`, nil, ErrBadDocument},
		{"truncated", `{"node":"n2","generation":`, nil, ErrBadDocument},
		{"trailing garbage", `{"node":"n2"} {}`, nil, ErrBadDocument},
		{"not an object", `[]`, nil, ErrBadDocument},
		{"empty", ``, nil, ErrBadDocument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeNodeState([]byte(tt.doc), "n2")
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzDecodeNodeState(f *testing.F) {
	f.Add([]byte(`{"node":"n2","generation":5,"vips":{"192.0.2.10":{"state":"active","healthy":true},"2001:db8::1":{"state":"inactive","reason":"x"}}}`))
	f.Add([]byte(`{"node":"n2","vips":null}`))
	f.Add([]byte(`{"node":"n2","vips":{"fe80::1%eth0":{"state":"active"}}}`))
	f.Add([]byte(`{"node":"\u00ff","generation":18446744073709551615,"vips":{}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeNodeState(data, "")
		if err != nil {
			if st != nil {
				t.Fatalf("error %v with a non-nil state", err)
			}
			return
		}
		// A document that decodes must encode and decode to the same state,
		// and every VIP in it must be usable as given.
		for addr, v := range st.VIPs {
			if !addr.IsValid() || addr.Zone() != "" || addr.Is4In6() {
				t.Fatalf("accepted vip address %q", addr)
			}
			switch v.State {
			case StateActive, StateDraining, StateInactive:
			default:
				t.Fatalf("accepted state %q", v.State)
			}
		}
		out, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("encoding a decoded state: %v", err)
		}
		again, err := DecodeNodeState(out, st.Node)
		if err != nil {
			t.Fatalf("decoding %s: %v", out, err)
		}
		if diff := cmp.Diff(st, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// A peer whose document says it restarts for an upgrade (RestartUntil) is
// kept, as that document has it, while it misses polls until then; the
// next vipd's document ends the hold; misses after the time fail it.
func TestPollerHoldsRestartingPeer(t *testing.T) {
	checkNoGoroutineLeak(t)
	f, srv := newFakePeer(t, "n2")
	reports := startPoller(t, []Member{{Name: "n2", URL: srv.URL + "/state"}}, fastPoll)
	nextPeerReport(t, reports) // up

	until := time.Now().Add(time.Second)
	f.set("ok", func(st *NodeState) { st.Generation, st.RestartUntil = 2, until })
	want := f.st.Clone()
	if diff := cmp.Diff(peerReport{"n2", want}, nextPeerReport(t, reports)); diff != "" {
		t.Fatalf("the restart document (-want +got):\n%s", diff)
	}
	// The old vipd is gone; the new one is not listening yet.
	f.set("500", nil)
	noPeerReport(t, reports, f, 5*fastPoll.Fall)

	// The new vipd answers: its document is reported, the hold is over.
	f.set("ok", func(st *NodeState) { st.Generation, st.RestartUntil = 3, time.Time{} })
	want = f.st.Clone()
	if diff := cmp.Diff(peerReport{"n2", want}, nextPeerReport(t, reports)); diff != "" {
		t.Fatalf("the new vipd's document (-want +got):\n%s", diff)
	}
	// Without RestartUntil, misses fail the peer as ever.
	f.set("500", nil)
	if diff := cmp.Diff(peerReport{"n2", nil}, nextPeerReport(t, reports)); diff != "" {
		t.Fatalf("after misses (-want +got):\n%s", diff)
	}

	// A restart that never comes back: held until RestartUntil, then
	// failed after fall misses.
	f.set("ok", func(st *NodeState) { st.Generation = 4 })
	nextPeerReport(t, reports)
	until = time.Now().Add(300 * time.Millisecond)
	f.set("ok", func(st *NodeState) { st.Generation, st.RestartUntil = 5, until })
	nextPeerReport(t, reports)
	f.set("500", nil)
	r := nextPeerReport(t, reports)
	if r.St != nil {
		t.Fatalf("report %+v, want failed", r.St)
	}
	if now := time.Now(); now.Before(until) {
		t.Errorf("failed %v before the restart time ran out", until.Sub(now))
	}
}

// A document whose RestartUntil is far ahead is held at most
// MaxRestartHold from when it was received.
func TestPeerStateHoldBounded(t *testing.T) {
	now := time.Now()
	ps := peerState{h: health.Hysteresis{Rise: 1, Fall: 1}}
	ps.h.Observe(true)
	ps.reported(&NodeState{Node: "n2", Generation: 1, RestartUntil: now.Add(24 * time.Hour)}, now)
	if !ps.holding(now.Add(MaxRestartHold - time.Second)) {
		t.Errorf("not holding within MaxRestartHold")
	}
	if ps.holding(now.Add(MaxRestartHold + time.Second)) {
		t.Errorf("still holding after MaxRestartHold")
	}
	ps.reported(&NodeState{Node: "n2", Generation: 2}, now)
	if ps.holding(now) {
		t.Errorf("holding after a document without RestartUntil")
	}
}
