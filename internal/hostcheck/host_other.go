//go:build !linux

package hostcheck

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"runtime"
)

// System returns a Host whose every probe fails with "not supported on
// GOOS": vipd's dataplane is Linux-only, but vipctl builds anywhere.
func System() Host { return otherHost{} }

type otherHost struct{}

var errGOOS = fmt.Errorf("host checks: %w on %s", ErrUnsupported, runtime.GOOS)

func (otherHost) ReadFile(string) ([]byte, error)              { return nil, errGOOS }
func (otherHost) Stat(string) (fs.FileInfo, error)             { return nil, errGOOS }
func (otherHost) Glob(string) ([]string, error)                { return nil, errGOOS }
func (otherHost) KernelRelease() (string, error)               { return "", errGOOS }
func (otherHost) DriverInfo(string) (DriverInfo, error)        { return DriverInfo{}, errGOOS }
func (otherHost) Channels(string) (Channels, error)            { return Channels{}, errGOOS }
func (otherHost) RxVLANOffload(string) (bool, error)           { return false, errGOOS }
func (otherHost) MTU(string) (int, error)                      { return 0, errGOOS }
func (otherHost) Routes(bool) ([]netip.Prefix, error)          { return nil, errGOOS }
func (otherHost) ProbeBPF(BPFFeature) error                    { return errGOOS }
func (otherHost) HTTPGet(context.Context, string) (int, error) { return 0, errGOOS }
func (otherHost) Dial(context.Context, string, string) (net.Conn, error) {
	return nil, errGOOS
}
func (otherHost) Listen(context.Context, string, string) (net.Listener, error) {
	return nil, errGOOS
}
