package routing

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"bgp", ModeBGP, false},
		{"bird-ospf", ModeBirdOSPF, false},
		{"", "", true},
		{"ospf", "", true},
		{"BGP", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMode(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("ParseMode(%q) = %q, %v", tt.in, got, err)
			}
			var u Mode
			if uerr := u.UnmarshalText([]byte(tt.in)); u != tt.want || (uerr != nil) != tt.wantErr {
				t.Errorf("UnmarshalText(%q) = %q, %v", tt.in, u, uerr)
			}
			b, merr := Mode(tt.in).MarshalText()
			if tt.wantErr {
				if merr == nil {
					t.Errorf("MarshalText(%q) succeeded", tt.in)
				}
				return
			}
			if merr != nil || string(b) != tt.in || got.String() != tt.in {
				t.Errorf("MarshalText = %q, %v; String = %q", b, merr, got.String())
			}
		})
	}
}

func TestHostPrefix(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.1": "192.0.2.1/32", "2001:db8::1": "2001:db8::1/128"} {
		if got := HostPrefix(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("HostPrefix(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestDivergences(t *testing.T) {
	a, b, c, d, e := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32"),
		netip.MustParsePrefix("192.0.2.3/32"), netip.MustParsePrefix("192.0.2.4/32"), netip.MustParsePrefix("2001:db8::1/128")
	both := []string{"p1", "p2"}
	ex := Exported{SessionsUp: 2, Routes: map[netip.Prefix]ExportedRoute{
		a: {Peers: both},
		b: {Peers: both, Draining: true},
		c: {Peers: []string{"p1"}},
		d: {Peers: both, Mismatch: "exported with med 50; want med 70 (normal) or med 1000 (draining)"},
		e: {Peers: both},
	}}
	want := []Route{{Prefix: a}, {Prefix: b}, {Prefix: c}, {Prefix: d}, {Prefix: netip.MustParsePrefix("192.0.2.9/32")}}
	got := ex.Divergences(want)
	wantLines := []string{
		"192.0.2.2/32: exported with draining=true, announced with draining=false",
		"192.0.2.3/32: exported to 1 of 2 up sessions (p1)",
		"192.0.2.4/32: exported with med 50; want med 70 (normal) or med 1000 (draining)",
		"192.0.2.9/32: announced but not exported",
		"2001:db8::1/128: exported but not announced",
	}
	if !slices.Equal(got, wantLines) {
		t.Errorf("Divergences:\n got %q\nwant %q", got, wantLines)
	}
	if got := (Exported{SessionsUp: 2, Routes: map[netip.Prefix]ExportedRoute{a: {Peers: both}}}).Divergences([]Route{{Prefix: a}}); got != nil {
		t.Errorf("a matching export diverges: %q", got)
	}
	if got := (Exported{}).Divergences(want); len(got) != 1 || !strings.Contains(got[0], "no routing session up") {
		t.Errorf("no session up: %q", got)
	}
	// OSPF: an IPv4 route rides the v2 adjacency only, an IPv6 one the v3.
	split := Exported{SessionsUp: 2, SessionsUp4: 1, SessionsUp6: 1, Routes: map[netip.Prefix]ExportedRoute{
		a: {Peers: []string{"ospf_v2 x"}}, e: {Peers: []string{"ospf_v3 x"}}}}
	if got := split.Divergences([]Route{{Prefix: a}, {Prefix: e}}); got != nil {
		t.Errorf("routes on every session of their family diverge: %q", got)
	}
	split.SessionsUp, split.SessionsUp6 = 1, 0
	delete(split.Routes, e)
	if got := split.Divergences([]Route{{Prefix: a}, {Prefix: e}}); len(got) != 1 || !strings.Contains(got[0], "no session of its address family") {
		t.Errorf("IPv6 route with no IPv6 session: %q", got)
	}
	if got := (Exported{}).Divergences(nil); got != nil {
		t.Errorf("nothing announced, no session: %q", got)
	}
}
