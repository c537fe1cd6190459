package etcd

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/cluster/etcd/etcdtest"
)

func TestConfig(t *testing.T) {
	ring, _ := cluster.NewKeyring(testKey(1))
	good := Config{Self: "n1", Members: []string{"n1", "n2"}, Endpoints: []string{"http://192.0.2.1:2379"},
		Keys: ring, Verifier: cluster.NewVerifier(ring, cluster.VerifierOptions{})}
	if _, err := New(hclog.NewNullLogger(), good, func(cluster.Update) {}); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, change := range map[string]func(*Config){
		"self not a member": func(c *Config) { c.Self = "n3" },
		"slash in a name":   func(c *Config) { c.Members = append(c.Members, "a/b") },
		"no endpoints":      func(c *Config) { c.Endpoints = nil },
		"prefix":            func(c *Config) { c.Prefix = "/vipd" },
		"ttl too short":     func(c *Config) { c.LeaseTTL = time.Second },
		"ttl fraction":      func(c *Config) { c.LeaseTTL = 2500 * time.Millisecond },
		"refresh < ttl":     func(c *Config) { c.Refresh = 2 * time.Second; c.LeaseTTL = 3 * time.Second },
		"no keys":           func(c *Config) { c.Keys = nil },
		"no verifier":       func(c *Config) { c.Verifier = nil },
	} {
		c := good
		change(&c)
		if _, err := New(hclog.NewNullLogger(), c, func(cluster.Update) {}); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

// Three vipds on a 3-member etcd: each sees the others, a change reaches
// every director, and directors at the same revision hold the same states.
func TestEtcdSharedView(t *testing.T) {
	c := etcdtest.Start(t, 3, etcdtest.Options{})
	names := []string{"n1", "n2", "n3"}
	var nodes []*node
	for _, n := range names {
		nodes = append(nodes, startNode(t, c, n, names, rigOptions{}))
	}
	for i, n := range nodes {
		n.b.Publish(docState(names[i], 1, cluster.StateActive))
	}
	for _, n := range nodes {
		for _, m := range names {
			if m != n.name {
				n.waitGeneration(t, m, 1, 15*time.Second)
			}
		}
	}
	// Changes from every node, interleaved.
	for gen := uint64(2); gen <= 6; gen++ {
		for i, n := range nodes {
			st := cluster.StateActive
			if gen%2 == 0 {
				st = cluster.StateDraining
			}
			n.b.Publish(docState(names[i], gen, st))
		}
	}
	for _, n := range nodes {
		for _, m := range names {
			if m != n.name {
				n.waitGeneration(t, m, 6, 10*time.Second)
			}
		}
	}
	sameRevisionSameView(t, nodes)
	for _, n := range nodes {
		for _, m := range names {
			if m == n.name {
				continue
			}
			v := n.view1(t, m)
			if !v.Up || v.Signature != "ok" || v.Revision == 0 || len(v.Rejected) != 0 || v.KeyID != cluster.KeyID(testKey(1)) {
				t.Errorf("%s's view of %s: %+v", n.name, m, v)
			}
			if n.failures(m) != 0 {
				t.Errorf("%s saw %s fail", n.name, m)
			}
		}
		if b := n.members.Backend(); !b.Connected || b.Frozen || b.Revision == 0 {
			t.Errorf("%s backend %+v", n.name, b)
		}
	}
}

// A vipd killed with SIGKILL (a process of its own, its lease not revoked)
// is dropped by its peers once the lease expires.
func TestEtcdKilledVipdLeaseExpires(t *testing.T) {
	c := etcdtest.Start(t, 3, etcdtest.Options{})
	watcher := startNode(t, c, "n1", []string{"n1", "n3"}, rigOptions{})
	watcher.b.Publish(docState("n1", 1, cluster.StateActive))

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := c.Client.Cmd(exe, "-test.run=^TestHelperVipd$")
	cmd.Env = append(os.Environ(), helperEnv+"=n3 "+strings.Join(c.Endpoints(), ","))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	watcher.waitGeneration(t, "n3", 1, 15*time.Second)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-exited
	if s := stderr.String(); strings.Contains(s, "helper Run returned") {
		t.Fatalf("helper ended on its own: %s", s)
	}
	took := watcher.waitFailed(t, "n3", 10*time.Second)
	t.Logf("n3 killed: dropped after %s (lease ttl 2s)", time.Since(killed).Round(10*time.Millisecond))
	if took < time.Second {
		t.Errorf("n3 dropped %s after the kill: before its lease could expire", took)
	}
	if v := watcher.view1(t, "n3"); v.Up {
		t.Errorf("view of n3 after its lease expired: %+v", v)
	}
	if out, err := c.Etcdctl("get", "--prefix", DefaultPrefix+"n3"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("n3's key after expiry: %q, %v", out, err)
	}
}

// An etcd member killed (the leader, even) changes nothing; losing the
// quorum freezes every view, reports it, and flushes nothing, even past the
// lease TTL; regaining it brings the changes made meanwhile, and nobody
// ever saw a member fail.
func TestEtcdMemberKilledAndQuorum(t *testing.T) {
	c := etcdtest.Start(t, 3, etcdtest.Options{})
	names := []string{"n1", "n2", "n3"}
	var nodes []*node
	for _, n := range names {
		nodes = append(nodes, startNode(t, c, n, names, rigOptions{ttl: 3 * time.Second}))
	}
	for i, n := range nodes {
		n.b.Publish(docState(names[i], 1, cluster.StateActive))
	}
	for _, n := range nodes {
		for _, m := range names {
			if m != n.name {
				n.waitGeneration(t, m, 1, 15*time.Second)
			}
		}
	}

	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(leader)
	t.Logf("killed etcd member %s (the leader)", c.Members()[leader].Name)
	nodes[1].b.Publish(docState("n2", 2, cluster.StateDraining))
	for _, n := range []*node{nodes[0], nodes[2]} {
		took := n.waitGeneration(t, "n2", 2, 15*time.Second)
		t.Logf("%s saw n2's change %s after the leader died", n.name, took.Round(10*time.Millisecond))
	}

	second := (leader + 1) % 3
	c.Kill(second)
	lost := time.Now()
	for _, n := range nodes {
		n.waitFor(t, "frozen", 15*time.Second, func() bool { return n.members.Backend().Frozen })
	}
	t.Logf("quorum lost: every node frozen after %s", time.Since(lost).Round(10*time.Millisecond))
	// A change that cannot be written, and time past the lease TTL (3 s):
	// the views stay as they were.
	nodes[2].b.Publish(docState("n3", 3, cluster.StateDraining))
	time.Sleep(5 * time.Second)
	for _, n := range nodes {
		for _, m := range names {
			if m == n.name {
				continue
			}
			if st := n.state(m); st == nil || !n.view1(t, m).Up {
				t.Errorf("%s lost %s while frozen", n.name, m)
			}
		}
		if b := n.members.Backend(); !b.Frozen || b.Connected || b.Err == "" {
			t.Errorf("%s backend while frozen: %+v", n.name, b)
		}
	}
	if nodes[0].state("n3").Generation != 1 {
		t.Errorf("n1 saw n3's change without a quorum")
	}

	c.Restart(second)
	c.Restart(leader)
	back := time.Now()
	for _, n := range nodes {
		n.waitFor(t, "thawed", 30*time.Second, func() bool { b := n.members.Backend(); return b.Connected && !b.Frozen })
	}
	for _, n := range []*node{nodes[0], nodes[1]} {
		n.waitGeneration(t, "n3", 3, 15*time.Second)
	}
	t.Logf("quorum back: views current %s after the restart", time.Since(back).Round(10*time.Millisecond))
	// Past the old leases' lifetime on the new leader: still nobody fails.
	time.Sleep(4 * time.Second)
	for _, n := range nodes {
		for _, m := range names {
			if m != n.name && n.failures(m) != 0 {
				t.Errorf("%s saw %s fail %d times", n.name, m, n.failures(m))
			}
		}
	}
	sameRevisionSameView(t, nodes)
}

// Documents in etcd are signed too: anyone who can write to etcd can still
// not speak for a member. A forged, unsigned, wrong-key, replayed or
// misplaced document is refused (the member counts as failed, the reason
// is counted); a running member, seeing its key changed, writes it back,
// and a stopped one is never brought back by a fake.
func TestEtcdRefusesForgedDocuments(t *testing.T) {
	c := etcdtest.Start(t, 3, etcdtest.Options{})
	names := []string{"n1", "n2"}
	n1 := startNode(t, c, "n1", names, rigOptions{})
	n2 := startNode(t, c, "n2", names, rigOptions{})
	n1.b.Publish(docState("n1", 1, cluster.StateActive))
	n2.b.Publish(docState("n2", 1, cluster.StateDraining))
	n1.waitGeneration(t, "n2", 1, 15*time.Second)

	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(c.Dial)}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := t.Context()
	resp, err := cli.Get(ctx, DefaultPrefix+"n2")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("reading n2's key: %v", err)
	}
	captured := resp.Kvs[0].Value // genuine, and soon older than n2's next write

	own, _ := cluster.NewKeyring(testKey(1))
	other, _ := cluster.NewKeyring(testKey(7))
	fake := docState("n2", 99, cluster.StateActive) // "n2 active, healthy"
	sealed := func(r *cluster.Keyring, st cluster.NodeState) string {
		b, err := r.Seal(st, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	n2.b.Publish(docState("n2", 2, cluster.StateDraining))
	n1.waitGeneration(t, "n2", 2, 10*time.Second)

	attacks := []struct {
		name   string
		value  string
		reason cluster.Reason
	}{
		{"wrong key", sealed(other, fake), cluster.ReasonWrongKey},
		{"unsigned", `{"node":"n2","generation":99,"vips":{"198.51.100.10":{"state":"active","healthy":true}}}`, cluster.ReasonUnsigned},
		{"forged", strings.Replace(sealed(own, docState("n2", 99, cluster.StateDraining)), "draining", "active", 1), cluster.ReasonForged},
		{"replayed", string(captured), cluster.ReasonReplayed},
		{"another member's", sealed(own, docState("n1", 99, cluster.StateActive)), cluster.ReasonWrongNode},
	}
	put := func(value string) {
		t.Helper()
		if _, err := cli.Put(ctx, DefaultPrefix+"n2", value); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(a string, reason cluster.Reason, before uint64) {
		t.Helper()
		n1.waitFor(t, a+" refused", 10*time.Second, func() bool { return n1.view1(t, "n2").Rejected[reason] > before })
	}
	// n2 running: it sees its key changed and writes it back. The refusal
	// fails n2 for a moment, unless n2's rewrite lands in the same watch
	// response (one Update is the state at its last revision).
	for _, a := range attacks {
		before, failures := n1.view1(t, "n2").Rejected[a.reason], n1.failures("n2")
		put(a.value)
		refused(a.name, a.reason, before)
		n1.waitFor(t, "n2 back after "+a.name, 10*time.Second, func() bool {
			st, v := n1.state("n2"), n1.view1(t, "n2")
			return st != nil && st.Generation == 2 && st.VIPs[vipA].State == cluster.StateDraining && v.Up && v.Signature == "ok"
		})
		if f := n1.failures("n2") - failures; f > 1 {
			t.Errorf("%s: n2 failed %d times", a.name, f)
		}
	}
	// n2 stopped (the lab's case: a fake at a stopped member's place): its
	// lease expires, and no fake ever brings it back.
	n2.stop()
	n1.waitFailed(t, "n2", 15*time.Second)
	for _, a := range attacks {
		before := n1.view1(t, "n2").Rejected[a.reason]
		put(a.value)
		refused(a.name, a.reason, before)
		if st, v := n1.state("n2"), n1.view1(t, "n2"); st != nil || v.Up {
			t.Errorf("%s believed: %+v, view %+v", a.name, st, v)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if st := n1.state("n2"); st != nil {
		t.Errorf("a fake believed: %+v", st)
	}
	// A key for no member of the cluster is ignored.
	updates := len(n1.updates)
	if _, err := cli.Put(ctx, DefaultPrefix+"intruder", sealed(own, docState("intruder", 1, cluster.StateActive))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	n1.mu.Lock()
	if len(n1.updates) != updates {
		t.Errorf("a key for no member produced updates: %+v", n1.updates[updates:])
	}
	n1.mu.Unlock()
}
