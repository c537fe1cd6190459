package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestDiff checks what a reload of base with one edit reports.
func TestDiff(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name  string
		edits []string
		want  Changes
	}{
		{name: "same file", want: Changes{}},
		{
			name:  "vip added",
			edits: []string{"[routing]", "[[vip]]\naddress = \"2001:db8:100::1\"\nservices = [\"tcp/80\"]\ncheck = {type = \"none\"}\n[routing]"},
			want:  Changes{Added: []netip.Addr{a("2001:db8:100::1")}},
		},
		{
			name:  "vip removed and another's services changed",
			edits: []string{"[[vip]]\nname = \"two\"\naddress = \"198.51.100.20\"\nservices = [\"tcp/443\"]\ncheck = { type = \"none\" }\n", "", `"udp/*"`, `"udp/53"`},
			want:  Changes{Removed: []netip.Addr{a("198.51.100.20")}, Changed: []netip.Addr{a("198.51.100.10")}},
		},
		{
			name:  "vip route attributes changed",
			edits: []string{`communities = ["65000:100"]`, `communities = ["65000:200"]`},
			want:  Changes{Changed: []netip.Addr{a("198.51.100.10")}},
		},
		{
			name:  "drain policy needs a restart",
			edits: []string{"asn = 65100", "asn = 65100\ndrain = \"deprefer\""},
			want:  Changes{Restart: []string{"routing.drain"}},
		},
		{
			name:  "live and restart items",
			edits: []string{`seed = 7`, "seed = 8\nfall = 4", `interface = "eth0"`, `interface = "eth1"`, `asn = 65000`, `asn = 65001`},
			want:  Changes{Live: []string{"cluster.polling"}, Restart: []string{"cluster.seed", "routing.bgp", "dataplane.interface"}},
		},
	}
	old, err := Parse("vipd.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("vipd.toml", []byte(edit(t, tt.edits...)))
			if err != nil {
				t.Fatal(err)
			}
			got := c.Diff(old)
			if diff := cmp.Diff(&tt.want, got, append(cmpAddrs, cmpopts.EquateEmpty())...); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
			if got.Empty() != (tt.name == "same file") {
				t.Errorf("Empty() = %v", got.Empty())
			}
		})
	}
	if ch := old.Diff(nil); len(ch.Added) != 2 || len(ch.Restart) == 0 {
		t.Errorf("Diff(nil) = %+v, want every VIP added and restart items", ch)
	}
}
