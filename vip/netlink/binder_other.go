//go:build !linux

package netlink

import (
	"context"
	"errors"
	"net/netip"
	"runtime"

	"github.com/hashicorp/go-hclog"
)

// errUnsupported is returned by every Binder method off Linux.
var errUnsupported = errors.New("binding VIPs is not supported on " + runtime.GOOS)

// Binder is the VIP binder; off Linux it only reports errUnsupported.
type Binder struct{}

// New returns an error: binding needs Linux rtnetlink.
func New(log hclog.Logger, opts Options) (*Binder, error) { return nil, errUnsupported }

// Close does nothing.
func (b *Binder) Close() error { return nil }

// Bind returns errUnsupported.
func (b *Binder) Bind(context.Context, netip.Addr) error { return errUnsupported }

// Unbind returns errUnsupported.
func (b *Binder) Unbind(context.Context, netip.Addr) error { return errUnsupported }

// Bound returns errUnsupported.
func (b *Binder) Bound(context.Context) ([]netip.Addr, error) { return nil, errUnsupported }

// Watch returns errUnsupported.
func (b *Binder) Watch(context.Context) (<-chan struct{}, error) { return nil, errUnsupported }
