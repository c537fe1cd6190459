package etcd

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/cluster/etcd/etcdtest"
	"github.com/vipd/vipd/internal/netnstest"
)

var (
	scaleSizes  = flag.String("scale.sizes", "16,64,256", "cluster sizes BenchmarkScale simulates")
	scaleWindow = flag.Duration("scale.window", 10*time.Second, "steady-state window over which BenchmarkScale measures CPU")
	scaleTrials = flag.Int("scale.trials", 5, "state changes BenchmarkScale times per size and backend")
)

// In poll mode only D of the N simulated members poll: all N would be
// N x (N-1) requests a second in one process (65280 at N=256, more than
// this machine's two cores serve). D directors each poll all N-1 peers,
// with D chosen so the process makes at most pollBudget requests a second
// (D = 15 at N=16 and 64, 4 at N=256), and the CPU figure is the process's
// CPU over D: each director's polling plus serving D x (N-1) polls is D
// nodes' share of the real N x (N-1). Poll-mode switch times are the max
// over those D directors; every director's is bounded by the poll interval
// plus jitter anyway.
const (
	pollBudget       = 1000 // requests a second
	maxPollDirectors = 16
)

func pollDirectors(n int) int {
	return max(2, min(maxPollDirectors, n-1, pollBudget/(n-1)))
}

// scaleRow is one line of the report.
type scaleRow struct {
	backend    string
	n          int
	directors  int
	cpuPerNode float64 // fraction of one core, per node
	etcdCPU    float64 // fraction of one core, all etcd members together
	p50, max   time.Duration
	switched   int // trials where every director switched
	trials     int
}

// BenchmarkScale simulates N = 16, 64 and 256 members in this process and
// reports, per backend, the CPU per node (steady state, no changes) and the
// time from one member's state change to every director's view switch
// (the Update carrying it reaching the consumer). Poll mode: every member
// serves its signed document on its own loopback listener; 16 directors
// poll all N-1 peers each second (interval 1 s, timeout 500 ms, rise 2,
// fall 3). etcd mode: every member is a Backend with its own client,
// publishing under a 5 s lease and watching the prefix, against a real
// 3-member etcd in network namespaces. Run with -benchtime 1x: one run is
// the whole report.
func BenchmarkScale(b *testing.B) {
	netnstest.RequireRoot(b)
	var sizes []int
	for f := range strings.SplitSeq(*scaleSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			b.Fatalf("-scale.sizes: %q", f)
		}
		sizes = append(sizes, n)
	}
	// etcd with its production timers.
	c := etcdtest.Start(b, 3, etcdtest.Options{HeartbeatMS: 100, ElectionMS: 1000})
	var rows []scaleRow
	for range b.N {
		rows = rows[:0]
		for _, n := range sizes {
			rows = append(rows, scalePoll(b, n), scaleEtcd(b, c, n))
		}
	}
	b.StopTimer()
	fmt.Printf("\nCluster state at scale: CPU per node (steady state, %s window) and change-to-every-director switch time (%d changes)\n", *scaleWindow, *scaleTrials)
	fmt.Printf("%-7s %5s %9s %13s %14s %10s %10s %9s\n", "backend", "N", "directors", "cpu/node", "etcd cpu (3)", "p50", "max", "switched")
	for _, r := range rows {
		etcdCPU := "-"
		if r.backend == "etcd" {
			etcdCPU = fmt.Sprintf("%.1f%%", 100*r.etcdCPU)
		}
		fmt.Printf("%-7s %5d %9d %12.2f%% %14s %10s %10s %5d/%d\n", r.backend, r.n, r.directors, 100*r.cpuPerNode, etcdCPU,
			r.p50.Round(time.Millisecond), r.max.Round(time.Millisecond), r.switched, r.trials)
	}
	for _, r := range rows {
		if r.backend == "etcd" && r.n == 256 {
			met := r.max <= 2*time.Second && r.cpuPerNode < 0.05 && r.switched == r.trials
			fmt.Printf("goal at N=256, etcd: every director switched within 2 s and under 5%% of a core per node: %s (max %s, %.2f%%)\n",
				map[bool]string{true: "met", false: "NOT met"}[met], r.max.Round(time.Millisecond), 100*r.cpuPerNode)
			b.ReportMetric(r.max.Seconds(), "etcd256-switch-s")
			b.ReportMetric(100*r.cpuPerNode, "etcd256-cpu%/node")
		}
	}
}

// cpuNow returns this process's CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pidCPU returns the CPU time of process pid (utime + stime).
func pidCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" of the command: state is field 3, utime 14, stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// switchTracker records, per director, when it saw member at generation.
type switchTracker struct {
	mu     sync.Mutex
	member string
	gen    uint64
	seen   map[int]time.Time
}

func (s *switchTracker) observe(director int, u cluster.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := u.States[s.member]; st != nil && st.Generation == s.gen {
		if _, ok := s.seen[director]; !ok {
			s.seen[director] = time.Now()
		}
	}
}

func (s *switchTracker) expect(member string, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.member, s.gen, s.seen = member, gen, map[int]time.Time{}
}

// wait returns when every one of directors switched (true) or timeout.
func (s *switchTracker) wait(directors int, start time.Time, timeout time.Duration) (time.Duration, bool) {
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		n := len(s.seen)
		var last time.Time
		for _, t := range s.seen {
			if t.After(last) {
				last = t
			}
		}
		s.mu.Unlock()
		if n >= directors {
			return last.Sub(start), true
		}
		if time.Now().After(deadline) {
			return timeout, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// upCounter counts, per director, the members it has up, to know when a
// simulated cluster has converged.
type upCounter struct {
	mu sync.Mutex
	up []map[string]bool
}

func newUpCounter(directors int) *upCounter {
	u := &upCounter{up: make([]map[string]bool, directors)}
	for i := range u.up {
		u.up[i] = map[string]bool{}
	}
	return u
}

func (u *upCounter) observe(director int, upd cluster.Update) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for name, st := range upd.States {
		u.up[director][name] = st != nil
	}
}

func (u *upCounter) waitAll(b *testing.B, what string, want int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		u.mu.Lock()
		least := want
		for _, m := range u.up {
			c := 0
			for _, up := range m {
				if up {
					c++
				}
			}
			least = min(least, c)
		}
		u.mu.Unlock()
		if least >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not converge within %s: a director has %d of %d members up", what, timeout, least, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func memberNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("m%03d", i)
	}
	return names
}

// measure runs the steady-state window, charging the process's CPU to
// cpuNodes nodes, then times the changes: change(gen) gives member changed
// a new generation, and every one of directors must switch to it.
func measure(row *scaleRow, cpuNodes int, etcdPIDs []int, change func(gen uint64), tr *switchTracker, changed string, directors int, spacing time.Duration) {
	cpu0, wall0 := cpuNow(), time.Now()
	var etcd0 time.Duration
	for _, p := range etcdPIDs {
		etcd0 += pidCPU(p)
	}
	time.Sleep(*scaleWindow)
	wall := time.Since(wall0)
	row.cpuPerNode = float64(cpuNow()-cpu0) / float64(wall) / float64(cpuNodes)
	var etcd1 time.Duration
	for _, p := range etcdPIDs {
		etcd1 += pidCPU(p)
	}
	row.etcdCPU = float64(etcd1-etcd0) / float64(wall)

	var lat []time.Duration
	row.trials = *scaleTrials
	for i := range *scaleTrials {
		gen := uint64(100 + i)
		tr.expect(changed, gen)
		start := time.Now()
		change(gen)
		d, ok := tr.wait(directors, start, 10*time.Second)
		if ok {
			row.switched++
		}
		lat = append(lat, d)
		time.Sleep(spacing)
	}
	slices.Sort(lat)
	row.p50, row.max = lat[len(lat)/2], lat[len(lat)-1]
}

func scalePoll(b *testing.B, n int) scaleRow {
	ring, _ := cluster.NewKeyring(testKey(1))
	names := memberNames(n)
	docs := make([]atomic.Pointer[cluster.NodeState], n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	urls := make([]string, n)
	for i, name := range names {
		st := docState(name, 1, cluster.StateActive)
		docs[i].Store(&st)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		urls[i] = "http://" + ln.Addr().String() + cluster.StatePath
		h := cluster.NewHandler(func() cluster.NodeState { return *docs[i].Load() }, cluster.SignWith(ring, nil))
		wg.Go(func() { _ = cluster.Serve(ctx, ln, h) })
	}
	d := pollDirectors(n) // the changed member, the last, is not a director
	tr, up := &switchTracker{}, newUpCounter(d)
	for i := range d {
		var peers []cluster.Member
		for j, name := range names {
			if j != i {
				peers = append(peers, cluster.Member{Name: name, URL: urls[j]})
			}
		}
		p := cluster.NewPollSource(hclog.NewNullLogger(), peers, cluster.PollOptions{
			Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3,
			Verifier: cluster.NewVerifier(ring, cluster.VerifierOptions{}),
		}, func(u cluster.Update) {
			up.observe(i, u)
			tr.observe(i, u)
		})
		wg.Go(func() { _ = p.Run(ctx) })
	}
	up.waitAll(b, fmt.Sprintf("poll N=%d", n), n-1, 120*time.Second)
	row := scaleRow{backend: "poll", n: n, directors: d}
	last := n - 1
	measure(&row, d, nil, func(gen uint64) {
		st := docState(names[last], gen, cluster.StateDraining)
		docs[last].Store(&st)
	}, tr, names[last], d, 1500*time.Millisecond)
	return row
}

func scaleEtcd(b *testing.B, c *etcdtest.Cluster, n int) scaleRow {
	ring, _ := cluster.NewKeyring(testKey(1))
	names := memberNames(n)
	prefix := fmt.Sprintf("/vipd/scale%d/", n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	tr, up := &switchTracker{}, newUpCounter(n)
	backends := make([]*Backend, n)
	for i, name := range names {
		be, err := New(hclog.NewNullLogger(), Config{
			Self: name, Members: names, Endpoints: c.Endpoints(), Prefix: prefix,
			Keys: ring, Verifier: cluster.NewVerifier(ring, cluster.VerifierOptions{}), Dialer: c.Dial,
		}, func(u cluster.Update) {
			up.observe(i, u)
			tr.observe(i, u)
		})
		if err != nil {
			b.Fatal(err)
		}
		backends[i] = be
		be.Publish(docState(name, 1, cluster.StateActive))
		wg.Go(func() { _ = be.Run(ctx) })
	}
	up.waitAll(b, fmt.Sprintf("etcd N=%d", n), n-1, 120*time.Second)
	var pids []int
	for _, m := range c.Members() {
		pids = append(pids, m.PID())
	}
	row := scaleRow{backend: "etcd", n: n, directors: n - 1}
	last := n - 1
	// Every member is a director: the process's CPU is N nodes'.
	measure(&row, n, pids, func(gen uint64) {
		backends[last].Publish(docState(names[last], gen, cluster.StateDraining))
	}, tr, names[last], n-1, 300*time.Millisecond)
	return row
}
