package routing

import (
	"net/netip"
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
