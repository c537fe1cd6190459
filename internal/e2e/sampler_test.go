package e2e

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// sampler looks at the lab every interval, in the background, compares
// every claim with the world (tracker: divergences) and the world with the
// model (what it must settle to).
type sampler struct {
	l        *lab
	m        *model
	tr       *tracker
	digests  digestCache
	interval time.Duration
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	seq     int
	last    sample
	samples int
	spent   time.Duration // looking, over all samples
	// slow is, for the last settle, how long into it each problem was
	// still seen: what a slow settle waited for.
	slow map[string]time.Duration
}

// sample is the outcome of one snapshot.
type sample struct {
	seq        int
	at         time.Time
	mismatches []mismatch
	expected   []string
	snap       *snapshot
}

func (l *lab) startSampler(m *model, tr *tracker, interval time.Duration) *sampler {
	s := &sampler{l: l, m: m, tr: tr, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	l.t.Cleanup(s.close)
	return s
}

func (s *sampler) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *sampler) run() {
	defer close(s.done)
	for {
		s.once()
		select {
		case <-s.stop:
			return
		case <-time.After(s.interval):
		}
	}
}

// once takes a snapshot and records what it shows.
func (s *sampler) once() sample {
	t0 := time.Now()
	snap := s.l.look()
	view := s.m.view()
	ms := claims(snap, view, &s.digests)
	s.tr.observe(snap.at, ms)
	exp := view.expected(snap)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.samples++
	s.spent += time.Since(t0)
	s.last = sample{seq: s.seq, at: snap.at, mismatches: ms, expected: exp, snap: snap}
	return s.last
}

// settle waits until a snapshot taken after the call shows no mismatch
// and the world as the model says it must be. It returns how long that
// took, or, after max, what was still off.
func (s *sampler) settle(max time.Duration) (time.Duration, []string) {
	start := time.Now()
	s.mu.Lock()
	after := s.seq
	s.mu.Unlock()
	var (
		last  sample
		first = map[string]time.Duration{} // when each problem was last seen
	)
	defer func() { s.slow = first }()
	for time.Since(start) < max {
		time.Sleep(s.interval / 2)
		s.mu.Lock()
		cur := s.last
		s.mu.Unlock()
		if cur.seq <= after+1 { // the first one may have begun before the call
			continue
		}
		last = cur
		for _, m := range cur.mismatches {
			first["claim: "+m.detail] = cur.at.Sub(start)
		}
		for _, e := range cur.expected {
			first["world: "+e] = cur.at.Sub(start)
		}
		if len(cur.mismatches) == 0 && len(cur.expected) == 0 {
			return cur.at.Sub(start), nil
		}
	}
	var off []string
	for _, m := range last.mismatches {
		off = append(off, "claim: "+m.detail)
	}
	for _, e := range last.expected {
		off = append(off, "world: "+e)
	}
	return time.Since(start), off
}

// waitedFor lists what the last settle waited for longest.
func (s *sampler) waitedFor(n int) []string {
	type item struct {
		what string
		d    time.Duration
	}
	var items []item
	for w, d := range s.slow {
		items = append(items, item{w, d})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].d > items[j].d })
	var out []string
	for _, it := range items[:min(n, len(items))] {
		out = append(out, fmt.Sprintf("%v: %s", it.d.Round(10*time.Millisecond), it.what))
	}
	return out
}

// count returns the number of samples and the mean time one took.
func (s *sampler) count() (int, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.spent / time.Duration(max(1, s.samples))
}

func fmtList(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return "\n\t" + strings.Join(ss, "\n\t")
}
