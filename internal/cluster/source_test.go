package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The poller as a Source: one Update per report, of one member, with no
// revision; the membership sees the report too.
func TestPollSourceUpdates(t *testing.T) {
	checkNoGoroutineLeak(t)
	ring := mustKeyring(t, testKey(1))
	_, url := newSignedPeer(t, "n2", ring)
	members := NewMembership()
	updates := make(chan Update, 10)
	var src Source = NewPollSource(hclog.NewNullLogger(), []Member{{Name: "n2", URL: url}}, PollOptions{
		Interval: 10 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1,
		Verifier: NewVerifier(ring, VerifierOptions{}), Membership: members,
	}, func(u Update) { updates <- u })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	}()
	select {
	case u := <-updates:
		if u.Revision != 0 || len(u.States) != 1 || u.States["n2"] == nil || u.States["n2"].Generation != 1 {
			t.Errorf("update %+v", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no update")
	}
	if v := memberView(t, members, "n2"); !v.Up || v.Generation != 1 || v.Signature != "ok" {
		t.Errorf("view %+v", v)
	}
}

func TestPerMember(t *testing.T) {
	var got []string
	PerMember(func(node string, st *NodeState) {
		got = append(got, node)
		if (node == "b") != (st == nil) {
			t.Errorf("%s: %v", node, st)
		}
	})(Update{States: map[string]*NodeState{"c": {}, "a": {}, "b": nil}})
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Errorf("order %v", got)
	}
}
