package netlink

import (
	"context"
	"fmt"
	"time"

	nl "github.com/vishvananda/netlink"
)

// Watch follows the addresses of the binder's link until ctx ends (then
// it closes the returned channel). It signals on the channel, which holds
// one signal so signals coalesce, whenever they may have changed: on each
// address event of the link, and when the subscription failed and was
// opened again. A netlink subscription that overflows (ENOBUFS: the
// kernel dropped events the reader was too slow for) ends with an error,
// and the events are lost: the signal then tells the reader to read the
// whole list again (Bound), which is all vip.Controller does on any
// signal. The reader should still read now and then: that is the only
// backstop for a loss that goes unreported.
func (b *Binder) Watch(ctx context.Context) (<-chan struct{}, error) {
	sub, err := b.subscribe()
	if err != nil {
		return nil, err
	}
	out := make(chan struct{}, 1)
	go b.watch(ctx, sub, b.subscribe, out)
	return out, nil
}

// addrSub is one address subscription: its updates (closed when it
// failed) and the channel that closes its socket.
type addrSub struct {
	updates <-chan nl.AddrUpdate
	done    chan struct{}
}

// close ends the subscription: its socket is closed, and its goroutine,
// which may be blocked sending an update, is drained until it exits.
func (s *addrSub) close() {
	close(s.done)
	go func() {
		for range s.updates {
		}
	}()
}

// watchBuffer is the subscription's receive buffer: room for bursts (a
// flush of many addresses) before the kernel reports an overflow.
const watchBuffer = 1 << 20

// subscribe opens an address subscription in the binder's namespace.
func (b *Binder) subscribe() (*addrSub, error) {
	ch := make(chan nl.AddrUpdate, 64)
	s := &addrSub{updates: ch, done: make(chan struct{})}
	opts := nl.AddrSubscribeOptions{
		ReceiveBufferSize: watchBuffer,
		ErrorCallback: func(err error) {
			select {
			case <-s.done: // closed on purpose: the error says so
			default:
				b.log.Warn("address subscription", "iface", b.link.Attrs().Name, "error", err)
			}
		},
	}
	if b.ns > 0 {
		ns := b.ns
		opts.Namespace = &ns
	}
	if err := nl.AddrSubscribeWithOptions(ch, s.done, opts); err != nil {
		return nil, fmt.Errorf("subscribing to the addresses of %s: %w", b.link.Attrs().Name, err)
	}
	return s, nil
}

// watch forwards sub's events for the link to out, and opens a new
// subscription (with backoff) when one fails, signalling out each time
// since events may have been lost. subscribe is Binder.subscribe except
// in tests.
func (b *Binder) watch(ctx context.Context, sub *addrSub, subscribe func() (*addrSub, error), out chan<- struct{}) {
	defer close(out)
	signal := func() {
		select {
		case out <- struct{}{}:
		default: // one is pending: the reader reads everything anyway
		}
	}
	index := b.link.Attrs().Index
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	for {
		select {
		case <-ctx.Done():
			sub.close()
			return
		case u, ok := <-sub.updates:
			if ok {
				if u.LinkIndex == index {
					signal()
				}
				continue
			}
		}
		// The subscription failed (an overflow, a closed socket): its
		// events may be lost.
		sub.close()
		signal()
		b.log.Warn("address subscription failed: events may be lost, reading the addresses again", "iface", b.link.Attrs().Name)
		backoff := minBackoff
		for {
			var err error
			if sub, err = subscribe(); err == nil {
				break
			}
			b.log.Warn("subscribing to addresses again", "iface", b.link.Attrs().Name, "error", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
		}
		signal() // whatever changed while there was no subscription
	}
}
