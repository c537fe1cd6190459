package dataplane

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// The data-path probe on the wire (bpf/vipd.h, struct probe_body): a GUE
// control message, C bit set, control type probeCType, header length 0,
// then the body (big endian) and padding up to the probe's size:
//
//	 0                   1                   2                   3
//	+-------+-------+-------+-------+-------+-------+-------+-------+
//	| 0x20 (ver 0, C, hlen 0) | ctype 0x76 |         flags 0        |  GUE
//	+-------+-------+-------+-------+-------+-------+-------+-------+
//	|                     magic 0x76697064 "vipd"                   |
//	+-------+-------+-------+-------+-------+-------+-------+-------+
//	|  kind (1 request, 2 reply)  | 0 |         reply port          |
//	+-------+-------+-------+-------+-------+-------+-------+-------+
//	|                     token (64 bits, echoed)                   |
//	|                     sent  (64 bits, echoed)                   |
//	+-------+-------+-------+-------+-------+-------+-------+-------+
//	|                     padding (echoed) ...                      |
//
// A node's XDP program answers a request from an allowed source (the trust
// boundary) in place, XDP_TX on the path it came by: MACs, addresses and
// ports swapped (the reply goes to the reply port when it is not 0), kind
// 2, everything else echoed. A reply to the node's GUE port is passed to
// its stack.
const (
	probeCType    = 0x76
	probeMagic    = 0x76697064
	probeRequest  = 1
	probeReply    = 2
	probeGUELen   = 4
	probeBodyLen  = 24
	probeLen      = probeGUELen + probeBodyLen
	udpHeaderLen  = 8
	maxProbeSize  = 65507 + 20 + udpHeaderLen // an IPv4 datagram of the largest UDP payload
	probeCBitHlen = 0x20
)

// ErrNoProbeAnswer: the probe's answer did not come back in time.
var ErrNoProbeAnswer = errors.New("no answer to data-path probe")

// ProbeSpec is one data-path probe.
type ProbeSpec struct {
	// Source is this node's underlay address, the address peers trust
	// GUE from; invalid lets the routing table choose.
	Source netip.Addr
	// SourcePort is the UDP source port; 0 is any free port. The answer
	// comes back to it. Using the GUE port makes the answer enter this
	// node the way GUE does (the program passes a probe reply on the GUE
	// port to the stack): a node checks its own inbound GUE path through
	// a peer. With a port set, the socket is bound with SO_REUSEPORT and
	// connected to Target, so probes to several members from the same
	// port run at once, each answer reaching its own socket.
	SourcePort uint16
	// Target is the member's underlay address and GUE port (port 0 =
	// DefaultGUEPort).
	Target netip.AddrPort
	// Size is the probe's IP packet length; the probe is padded to it and
	// sent with DF (never fragmented), so a path that cannot carry GUE of
	// that size fails the probe. 0 is the smallest probe.
	Size int
	// ZeroChecksum sends the probe with UDP checksum 0 and accepts an
	// answer with one, as vipd's directors send GUE: the probe then does
	// not depend on checksum offload, which GUE does not use either (a
	// veth hands the program a partial checksum that its answer would
	// carry on).
	ZeroChecksum bool
}

// Probe sends one data-path probe to s.Target and waits until its answer
// comes back or ctx ends (then the error wraps ErrNoProbeAnswer). It
// returns the round-trip time. The answer comes from the target's XDP
// program, so it proves the GUE path both ways: routing, filters, MTU up to
// Size, the target's program attached and trusting this node.
func Probe(ctx context.Context, s ProbeSpec) (time.Duration, error) {
	target := s.Target
	if target.Port() == 0 {
		target = netip.AddrPortFrom(target.Addr(), DefaultGUEPort)
	}
	target = netip.AddrPortFrom(target.Addr().Unmap(), target.Port())
	ipLen := 20
	network := "udp4"
	if target.Addr().Is6() {
		ipLen, network = 40, "udp6"
	}
	payload := probeLen
	if s.Size > 0 {
		if s.Size < ipLen+udpHeaderLen+probeLen || s.Size > maxProbeSize {
			return 0, fmt.Errorf("probing %s: size %d is outside %d-%d", target, s.Size, ipLen+udpHeaderLen+probeLen, maxProbeSize)
		}
		payload = s.Size - ipLen - udpHeaderLen
	}
	laddr := &net.UDPAddr{Port: int(s.SourcePort)}
	if s.Source.IsValid() {
		laddr.IP = s.Source.Unmap().AsSlice()
	}
	var c *net.UDPConn
	var err error
	connected := s.SourcePort != 0
	if connected {
		c, err = dialProbe(ctx, network, laddr, target)
	} else {
		c, err = net.ListenUDP(network, laddr)
	}
	if err != nil {
		return 0, fmt.Errorf("opening probe socket: %w", err)
	}
	defer c.Close()
	if err := setProbeDF(c, target.Addr().Is6()); err != nil {
		return 0, fmt.Errorf("setting DF on probe socket: %w", err)
	}
	if s.ZeroChecksum {
		if err := setProbeNoChecksum(c, target.Addr().Is6()); err != nil {
			return 0, fmt.Errorf("turning off the probe socket's UDP checksum: %w", err)
		}
	}

	req := make([]byte, payload)
	req[0], req[1] = probeCBitHlen, probeCType
	body := req[probeGUELen:]
	binary.BigEndian.PutUint32(body[0:], probeMagic)
	body[4] = probeRequest
	var token [8]byte
	if _, err := rand.Read(token[:]); err != nil {
		return 0, fmt.Errorf("making probe token: %w", err)
	}
	copy(body[8:16], token[:])
	start := time.Now()
	binary.BigEndian.PutUint64(body[16:], uint64(start.UnixNano()))
	if connected {
		_, err = c.Write(req)
	} else {
		_, err = c.WriteToUDPAddrPort(req, target)
	}
	if err != nil {
		return 0, fmt.Errorf("sending probe to %s: %w", target, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(time.Second)
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	buf := make([]byte, payload+1)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, fmt.Errorf("probing %s: %w within %v", target, ErrNoProbeAnswer, deadline.Sub(start).Round(time.Millisecond))
			}
			if connected {
				// A connected socket reports the path's ICMP errors
				// (port unreachable, too big): no answer either.
				return 0, fmt.Errorf("probing %s: %w: %w", target, ErrNoProbeAnswer, err)
			}
			return 0, fmt.Errorf("reading probe answer from %s: %w", target, err)
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("probing %s: %w: %w", target, ErrNoProbeAnswer, err)
		}
		if from.Addr().Unmap() != target.Addr() || n != payload || !isProbeReply(buf[:n], token) {
			continue // someone else's, or not an answer
		}
		return time.Since(start), nil
	}
}

// dialProbe opens a UDP socket bound to laddr with SO_REUSEPORT and
// connected to target: the kernel gives a connected socket the datagrams
// of its own peer before any other socket on the port.
func dialProbe(ctx context.Context, network string, laddr *net.UDPAddr, target netip.AddrPort) (*net.UDPConn, error) {
	d := net.Dialer{LocalAddr: laddr, Control: reusePort}
	c, err := d.DialContext(ctx, network, target.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// isProbeReply says whether b is the answer to the probe with token.
func isProbeReply(b []byte, token [8]byte) bool {
	if len(b) < probeLen || b[0] != probeCBitHlen || b[1] != probeCType {
		return false
	}
	body := b[probeGUELen:]
	return binary.BigEndian.Uint32(body) == probeMagic && body[4] == probeReply && [8]byte(body[8:16]) == token
}
