package cluster

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestServeState(t *testing.T) {
	tests := []struct {
		in      string
		want    ServeState
		wantErr bool
	}{
		{"active", StateActive, false},
		{"draining", StateDraining, false},
		{"inactive", StateInactive, false},
		{"", "", true},
		{"Active", "", true},
		{"up", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseServeState(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseServeState(%q) = %q, %v; want %q, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
			var u ServeState
			uerr := u.UnmarshalText([]byte(tt.in))
			if (uerr != nil) != tt.wantErr || u != tt.want {
				t.Errorf("UnmarshalText(%q) = %q, %v", tt.in, u, uerr)
			}
			if tt.wantErr {
				if _, err := ServeState(tt.in).MarshalText(); err == nil {
					t.Errorf("MarshalText(%q) succeeded", tt.in)
				}
				return
			}
			b, err := got.MarshalText()
			if err != nil || string(b) != tt.in || got.String() != tt.in {
				t.Errorf("MarshalText = %q, %v; String = %q; want %q", b, err, got.String(), tt.in)
			}
		})
	}
}

// The document's JSON is the wire format between versions of vipd: it must
// not change by accident.
func TestNodeStateJSON(t *testing.T) {
	st := NodeState{Node: "n1", Generation: 7, VIPs: map[netip.Addr]VIPState{
		netip.MustParseAddr("192.0.2.10"):  {State: StateDraining, Healthy: true},
		netip.MustParseAddr("2001:db8::1"): {State: StateActive, Reason: "service unhealthy"},
	}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"node":"n1","generation":7,"vips":{"192.0.2.10":{"state":"draining","healthy":true},"2001:db8::1":{"state":"active","healthy":false,"reason":"service unhealthy"}}}`
	if d := cmp.Diff(want, string(b)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := json.Marshal(NodeState{Node: "n1", VIPs: map[netip.Addr]VIPState{netip.MustParseAddr("192.0.2.10"): {}}}); err == nil {
		t.Error("a document with an empty state encoded")
	}
}

func TestNodeStateCloneEqual(t *testing.T) {
	a := &NodeState{Node: "n1", Generation: 1, VIPs: map[netip.Addr]VIPState{netip.MustParseAddr("192.0.2.10"): {State: StateActive}}}
	b := a.Clone()
	if !a.Equal(b) || !b.Equal(a) {
		t.Fatal("a clone differs")
	}
	b.VIPs[netip.MustParseAddr("192.0.2.10")] = VIPState{State: StateInactive}
	if a.Equal(b) || a.VIPs[netip.MustParseAddr("192.0.2.10")].State != StateActive {
		t.Error("a clone shares its VIP map")
	}
	var none *NodeState
	if none.Clone() != nil || !none.Equal(nil) || none.Equal(a) || a.Equal(nil) {
		t.Error("nil documents")
	}
}

func TestMembership(t *testing.T) {
	m := NewMembership()
	if got := m.Views(); len(got) != 0 {
		t.Fatalf("empty membership has views %v", got)
	}
	m.Record("n3", &NodeState{Node: "n3", Generation: 9})
	m.Record("n2", &NodeState{Node: "n2", Generation: 4})
	m.Record("n3", nil)
	want := []MemberView{{Name: "n2", Up: true, Generation: 4}, {Name: "n3"}}
	if d := cmp.Diff(want, m.Views()); d != "" {
		t.Errorf("views (-want +got):\n%s", d)
	}
}
