//go:build !linux

package dataplane

import "net"

// setProbeDF does nothing where the socket option is not known: the probe
// may then be fragmented on the way out.
func setProbeDF(*net.UDPConn, bool) error { return nil }
