package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

// TestLookupFlowMatchesProgram: for many flows, LookupFlow names the
// backends the XDP program itself sends the packet to (outer destination,
// and the alternate in the hop list), over a table whose rows alternate
// between two backends in a pattern no neighbouring rows share, so a row
// off by any bit shows.
func TestLookupFlowMatchesProgram(t *testing.T) {
	r := newRig(t)
	vipMix := netip.MustParseAddr("192.0.2.40")
	mix := func(i uint32) vipdRow {
		if FlowHash(7, netip.AddrFrom4([4]byte{byte(i >> 8), byte(i), 0, 1}), vipMix, 0, 0, 0)&1 == 0 {
			return vipdRow{Primary: 1, Secondary: 2}
		}
		return vipdRow{Primary: 2, Secondary: 1}
	}
	r.addVIP(t, vipMix, 80, 6, 12, mix)
	d := &Dataplane{objs: r.objs}
	ctx := context.Background()

	flows := 0
	for _, c := range []struct {
		client netip.Addr
		vip    netip.Addr
		port   uint16
		proto  uint8
	}{{client4, vipMix, 80, 6}, {client4, vipSplit, 80, 6}, {client6, vip6TCP, 443, 6}, {client4, vipTCP, 53, 17}} {
		for sport := uint16(30000); sport < 30100; sport++ {
			var frame []byte
			if c.proto == 6 {
				frame = tcpFrame(t, 0, c.client, sport, c.vip, c.port, syn)
			} else {
				frame = udpFrame(t, c.client, sport, c.vip, c.port, []byte("q"))
			}
			code, out := r.run(t, r.objs.VipdXdp, frame)
			if code != xdpTX {
				t.Fatalf("%s:%d -> %s:%d: verdict %s", c.client, sport, c.vip, c.port, verdictNames[code])
			}
			dst, _, hops, _ := checkGUE(t, out, node4)
			row, p, s, err := d.LookupFlow(ctx, c.vip, netip.AddrPortFrom(c.client, sport), c.proto, c.port)
			if err != nil {
				t.Fatal(err)
			}
			if p != dst || len(hops) != 1 || s != hops[0] {
				t.Fatalf("%s:%d -> %s:%d: LookupFlow row %d primary %s secondary %s; the program sent to %s with hops %v",
					c.client, sport, c.vip, c.port, row, p, s, dst, hops)
			}
			if want := FlowHash(testHashSeed, c.client, c.vip, sport, c.port, c.proto) & (TableRows - 1); row != want {
				t.Fatalf("row %d, want %d", row, want)
			}
			flows++
		}
	}
	t.Logf("%d flows: LookupFlow agrees with the program", flows)

	if _, _, _, err := d.LookupFlow(ctx, vipNone, netip.AddrPortFrom(client4, 1), 6, 80); !errors.Is(err, ErrNoVIPService) {
		t.Errorf("LookupFlow of a non-VIP: %v, want ErrNoVIPService", err)
	}
	if _, _, _, err := d.LookupFlow(ctx, vipTCP, netip.AddrPortFrom(client4, 1), 6, 8080); !errors.Is(err, ErrNoVIPService) {
		t.Errorf("LookupFlow of a port the VIP does not forward: %v, want ErrNoVIPService", err)
	}
}

// TestFlowHashMirror: the exported FlowHash is the tests' own copy of the
// program's hash (which the prog tables check byte for byte).
func TestFlowHashMirror(t *testing.T) {
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		src6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		for _, c := range [][2]netip.Addr{{src, vipTCP}, {src6, vip6TCP}} {
			if got, want := FlowHash(uint32(i)*2654435761, c[0], c[1], uint16(i), 80, 6), flowHash(uint32(i)*2654435761, c[0], c[1], uint16(i), 80, 6); got != want {
				t.Fatalf("FlowHash(%s, %s) = %#x, the tests' copy %#x", c[0], c[1], got, want)
			}
		}
	}
}
