package netnstest

import (
	"bufio"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// RouteDeletions counts the deletions of each prefix from a namespace's
// routing tables, as `ip monitor route` reports them: a route that left the
// kernel for a microsecond counts as much as one that left for good.
type RouteDeletions struct {
	mu sync.Mutex
	n  map[netip.Prefix]int
}

// WatchRouteDeletions follows ns's routes from now until the test ends.
func (ns *NS) WatchRouteDeletions(t testing.TB) *RouteDeletions {
	t.Helper()
	d := &RouteDeletions{n: map[netip.Prefix]int{}}
	cmd := ns.Cmd("ip", "monitor", "route")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 || f[0] != "Deleted" {
				continue
			}
			p, err := netip.ParsePrefix(f[1])
			if err != nil {
				a, aerr := netip.ParseAddr(f[1])
				if aerr != nil {
					continue
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			d.mu.Lock()
			d.n[p]++
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); <-done })
	time.Sleep(100 * time.Millisecond) // let ip monitor subscribe
	return d
}

// Of is how many times p was deleted so far.
func (d *RouteDeletions) Of(p netip.Prefix) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[p]
}
