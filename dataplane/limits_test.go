package dataplane

import (
	"errors"
	"strings"
	"testing"

	"github.com/vipd/vipd/vip"
)

func TestScaleCheck(t *testing.T) {
	for _, c := range []struct {
		name  string
		s     Scale
		names []string // the limits the error must name
	}{
		{"at the limits", Scale{VIPs: MaxVIPs, VIPKeys: MaxVIPKeys, Backends: MaxBackends, DirectorPrefixes: MaxDirectorPrefixes, MaxHops: 3}, nil},
		{"one VIP over", Scale{VIPs: MaxVIPs + 1}, []string{"MaxVIPs = 16384"}},
		{"services over", Scale{VIPs: 10, VIPKeys: MaxVIPKeys + 1}, []string{"MaxVIPKeys = 131072"}},
		{"backends over", Scale{Backends: MaxBackends + 1}, []string{"MaxBackends = 16384", "MaxMembers = 16384"}},
		{"prefixes and hops over", Scale{DirectorPrefixes: 2000, MaxHops: 4}, []string{"MaxDirectorPrefixes = 1024", "MaxHopsAccepted = 3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.s.Check()
			if len(c.names) == 0 {
				if err != nil {
					t.Errorf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrOverLimit) {
				t.Fatalf("Check: %v, want %v", err, ErrOverLimit)
			}
			for _, n := range c.names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("Check: %q does not name %q", err, n)
				}
			}
		})
	}
}

func TestVIPKeys(t *testing.T) {
	tcp80, tcp443, udp53, udpAny := vip.Service{Proto: 6, Port: 80}, vip.Service{Proto: 6, Port: 443},
		vip.Service{Proto: 17, Port: 53}, vip.Service{Proto: 17}
	for _, c := range []struct {
		services []vip.Service
		want     int
	}{
		{[]vip.Service{tcp80}, 2},
		{[]vip.Service{tcp80, tcp443}, 3},
		{[]vip.Service{tcp80, udp53, udpAny}, 5},
		{[]vip.Service{tcp80, tcp80}, 2},
	} {
		if got := VIPKeys(c.services); got != c.want {
			t.Errorf("VIPKeys(%v) = %d, want %d", c.services, got, c.want)
		}
	}
}
