//go:build !linux

package dataplane

import (
	"net"
	"syscall"
)

// setProbeDF does nothing where the socket option is not known: the probe
// may then be fragmented on the way out.
func setProbeDF(*net.UDPConn, bool) error { return nil }

// setProbeNoChecksum does nothing where the socket option is not known.
func setProbeNoChecksum(*net.UDPConn, bool) error { return nil }

// reusePort does nothing where SO_REUSEPORT is not known: probes from one
// port then run one at a time.
func reusePort(string, string, syscall.RawConn) error { return nil }
