package hostcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

// TestCheckIDs keeps the table's IDs and the results' IDs in step.
func TestCheckIDs(t *testing.T) {
	f := loadFixture(t, "virtio")
	r := Run(context.Background(), f, Spec{Interface: "eth0"})
	if len(r.Checks) != len(checks) {
		t.Fatalf("%d results for %d checks", len(r.Checks), len(checks))
	}
	for i, c := range checks {
		if r.Checks[i].ID != c.id {
			t.Errorf("check %d: table ID %q, result ID %q", i, c.id, r.Checks[i].ID)
		}
		one, err := RunOne(context.Background(), f, Spec{Interface: "eth0"}, c.id)
		if err != nil || one.ID != c.id {
			t.Errorf("RunOne(%q) = %+v, %v", c.id, one, err)
		}
	}
	if _, err := RunOne(context.Background(), f, Spec{}, "nosuch"); err == nil {
		t.Error("RunOne(nosuch) succeeded")
	}
}

func TestLog(t *testing.T) {
	var b bytes.Buffer
	sample.Log(hclog.New(&hclog.LoggerOptions{Output: &b, Level: hclog.Debug}))
	out := b.String()
	for _, want := range []string{
		`[WARN]  host check warning: check=rx-vlan reason="eth0: rx-vlan-offload: on`,
		`[ERROR] host check failed: check=ixgbe-tx-queues reason="eth0: 28 combined + 56 CPUs = 84 > 64" fix="ethtool -L eth0 combined 8"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "forwarding") || strings.Contains(out, "bird") {
		t.Errorf("log has PASS/SKIP checks:\n%s", out)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []Status
		want     int
	}{
		{"empty", nil, 0},
		{"all pass", []Status{Pass, Pass}, 0},
		{"skip counts as pass", []Status{Pass, Skip}, 0},
		{"a warning", []Status{Pass, Warn, Skip}, 1},
		{"a failure", []Status{Fail, Warn, Pass}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Report
			for _, s := range tc.statuses {
				r.Checks = append(r.Checks, Result{ID: "x", Status: s})
			}
			if got := r.ExitCode(); got != tc.want {
				t.Errorf("ExitCode() = %d, want %d", got, tc.want)
			}
		})
	}
}

var sample = Report{Checks: []Result{
	{ID: "forwarding", Name: "IP forwarding on a backend", Status: Pass, Finding: "net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=0"},
	{ID: "rx-vlan", Name: "rx-vlan-offload on the XDP interface", Status: Warn,
		Finding: "eth0: rx-vlan-offload: on: the NIC strips 802.1Q tags before XDP sees them", Fix: "ethtool -K eth0 rxvlan off"},
	{ID: "bird", Name: "BIRD control socket", Status: Skip, Finding: `routing mode "bgp", not bird-ospf`},
	{ID: "ixgbe-tx-queues", Name: "ixgbe XDP Tx queues (kernel < 4.20)", Status: Fail,
		Finding: "eth0: 28 combined + 56 CPUs = 84 > 64", Fix: "ethtool -L eth0 combined 8"},
}}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := sample.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `STATUS  CHECK            FINDING
PASS    forwarding       net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=0
WARN    rx-vlan          eth0: rx-vlan-offload: on: the NIC strips 802.1Q tags before XDP sees them
                         fix: ethtool -K eth0 rxvlan off
SKIP    bird             routing mode "bgp", not bird-ospf
FAIL    ixgbe-tx-queues  eth0: 28 combined + 56 CPUs = 84 > 64
                         fix: ethtool -L eth0 combined 8
1 pass, 1 skip, 1 warn, 1 fail
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := sample.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Checks   []Result `json:"checks"`
		ExitCode int      `json:"exit_code"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("parsing %s: %v", b.String(), err)
	}
	if diff := cmp.Diff(sample.Checks, got.Checks); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got.ExitCode != 2 {
		t.Errorf("exit_code = %d, want 2", got.ExitCode)
	}
	if !bytes.Contains(b.Bytes(), []byte(`"status": "WARN"`)) {
		t.Errorf("statuses are not names:\n%s", b.String())
	}
}
