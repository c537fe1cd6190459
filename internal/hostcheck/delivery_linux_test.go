package hostcheck

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/netnstest"
)

// TestLocalSourceDelivery checks, in private namespaces, the kernel
// behaviour the accept-local and rp-filter verdicts rest on (docs/field-notes.md, note 7):
// a packet arriving on the uplink with one of the node's own addresses as
// source (a GUE packet the director sent itself) is dropped unless
// accept_local is on; with it on, strict rp_filter still drops it when the
// source address is not on the uplink (here: on lo), loose or off keeps it.
func TestLocalSourceDelivery(t *testing.T) {
	node, peer := netnstest.New(t, "hn"), netnstest.New(t, "hr")
	up, pdev := netnstest.Veth(t, node, peer)
	node.MustRun(t, "ip", "addr", "add", "192.0.2.1/24", "dev", up)
	node.MustRun(t, "ip", "addr", "add", "192.0.2.3/24", "dev", up)
	node.MustRun(t, "ip", "addr", "add", "198.51.100.9/32", "dev", "lo")
	peer.MustRun(t, "ip", "addr", "add", "192.0.2.2/24", "dev", pdev)

	var conn net.PacketConn
	if err := node.Do(func() (err error) {
		conn, err = net.ListenPacket("udp4", "0.0.0.0:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := uint16(conn.LocalAddr().(*net.UDPAddr).Port)
	var raw int
	if err := peer.Do(func() (err error) {
		raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(raw)

	dst := netip.MustParseAddr("192.0.2.1")
	// delivered sends one UDP packet from src (spoofed by the peer) to the
	// node and reports whether the node's socket got it.
	delivered := func(t *testing.T, src netip.Addr, wait time.Duration) bool {
		t.Helper()
		payload := []byte(src.String())
		pkt := make([]byte, 28+len(payload))
		pkt[0], pkt[8], pkt[9] = 0x45, 64, unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		s4, d4 := src.As4(), dst.As4()
		copy(pkt[12:], s4[:])
		copy(pkt[16:], d4[:])
		binary.BigEndian.PutUint16(pkt[20:], 40000)
		binary.BigEndian.PutUint16(pkt[22:], port)
		binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload)))
		copy(pkt[28:], payload)
		if err := unix.Sendto(raw, pkt, 0, &unix.SockaddrInet4{Addr: d4}); err != nil {
			t.Fatalf("sending from %s: %v", src, err)
		}
		buf := make([]byte, 64)
		conn.SetReadDeadline(time.Now().Add(wait))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return false
			}
			if string(buf[:n]) == src.String() {
				return true
			}
		}
	}
	// The rig works: a foreign source arrives (after ARP).
	if !delivered(t, netip.MustParseAddr("192.0.2.7"), 5*time.Second) {
		t.Fatal("a packet from a foreign source did not arrive: test rig broken")
	}

	onUplink, onLo, foreign := netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("192.0.2.7")
	spec := Spec{Interface: up, LocalGUE: true}
	for _, tc := range []struct {
		acceptLocal, rpFilter      int
		wantAL, wantRP             Status
		uplinkSrc, loSrc, otherSrc bool // delivered?
	}{
		{0, 0, Fail, Pass, false, false, true},
		{0, 2, Fail, Pass, false, false, true},
		{1, 0, Pass, Pass, true, true, true},
		{1, 1, Pass, Warn, true, false, true},
		{1, 2, Pass, Pass, true, true, true},
	} {
		t.Run(fmt.Sprintf("accept_local=%d,rp_filter=%d", tc.acceptLocal, tc.rpFilter), func(t *testing.T) {
			node.MustRun(t, "sysctl", "-qw",
				fmt.Sprintf("net.ipv4.conf.%s.accept_local=%d", up, tc.acceptLocal),
				fmt.Sprintf("net.ipv4.conf.%s.rp_filter=%d", up, tc.rpFilter),
				"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.all.accept_local=0")
			var al, rp Result
			node.Do(func() error {
				al = checkAcceptLocal(context.Background(), System(), spec)
				rp = checkRPFilter(context.Background(), System(), spec)
				return nil
			})
			if al.Status != tc.wantAL || rp.Status != tc.wantRP {
				t.Errorf("checks: accept-local %s (%s), rp-filter %s (%s); want %s, %s",
					al.Status, al.Finding, rp.Status, rp.Finding, tc.wantAL, tc.wantRP)
			}
			for _, c := range []struct {
				src  netip.Addr
				want bool
			}{{onUplink, tc.uplinkSrc}, {onLo, tc.loSrc}, {foreign, tc.otherSrc}} {
				// A delivery returns at once; only drops wait it out.
				wait := 300 * time.Millisecond
				if c.want {
					wait = 2 * time.Second
				}
				if got := delivered(t, c.src, wait); got != c.want {
					t.Errorf("packet from %s delivered = %t, want %t", c.src, got, c.want)
				}
			}
		})
	}
}
