package cluster

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// ramp_from travels in the document as RFC 3339 and comes back as the
// same instant; absent is zero and not written; a malformed one makes the
// document bad.
func TestRampFromRoundTrip(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.10")
	at := time.Date(2026, 12, 2, 5, 0, 0, 123456789, time.UTC)
	st := NodeState{Node: "n2", Generation: 1, VIPs: map[netip.Addr]VIPState{a: {State: StateActive, Healthy: true, RampFrom: at}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"ramp_from":"2026-12-02T05:00:00.123456789Z"`) {
		t.Errorf("document %s lacks ramp_from", b)
	}
	got, err := DecodeNodeState(b, "n2")
	if err != nil || !got.VIPs[a].RampFrom.Equal(at) {
		t.Fatalf("decoded %+v, %v; want ramp_from %s", got, err, at)
	}
	st.VIPs[a] = VIPState{State: StateActive, Healthy: true}
	if b, _ := json.Marshal(st); strings.Contains(string(b), "ramp_from") {
		t.Errorf("zero ramp_from written: %s", b)
	}
	if _, err := DecodeNodeState([]byte(`{"node":"n2","vips":{"198.51.100.10":{"state":"active","ramp_from":"soon"}}}`), "n2"); !errors.Is(err, ErrBadDocument) {
		t.Errorf("bad ramp_from: %v, want ErrBadDocument", err)
	}
}
