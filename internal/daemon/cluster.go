package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/cluster/etcd"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/vip"
)

// The cluster wiring (docs/cluster.md): one Keyring, Verifier and
// Membership for the daemon's life, whatever reloads do; the source of
// member states (the poller or the etcd backend), restarted when a reload
// changes it; the node-state document's digests; and the etcd backend's
// publishing.

// tableAlgorithm names the table build in the configuration digests: a
// member whose vipd builds tables otherwise from the same inputs differs.
const tableAlgorithm = "rendezvous-v1"

// digestRepublishEvery bounds, in etcd mode, how often a document that
// differs from the last published only in its table digests is written:
// every director republishes after every table switch, and each write is
// a watch event at every member.
const digestRepublishEvery = time.Second

// clusterState is the daemon's cluster wiring.
type clusterState struct {
	keys     *cluster.Keyring
	verifier *cluster.Verifier

	mu      sync.Mutex // guards the fields below, orders reports against a reload
	cancel  context.CancelFunc
	backend *etcd.Backend // the running etcd backend, nil with poll
	kind    string        // the running source's backend ("" before the first)
	// last is the last document handed to the etcd backend; pending a
	// digest-only change waiting for the rate limit (timer running).
	last    *cluster.NodeState
	pending *cluster.NodeState
	lastAt  time.Time
	timer   *time.Timer

	// probes is the data-path prober (probe.go).
	probes probeState

	// restarting is the RestartUntil of the documents served once an
	// upgrade exit was announced (zero before).
	restarting time.Time
}

func newClusterState() *clusterState {
	keys := &cluster.Keyring{}
	return &clusterState{keys: keys, verifier: cluster.NewVerifier(keys, cluster.VerifierOptions{})}
}

// readKeys reads cfg's key file (none: nil keys) and checks the keys make a
// keyring, without changing the daemon's.
func readKeys(cfg *config.Config) ([][]byte, error) {
	if cfg.Cluster.KeyFile == "" {
		return nil, nil
	}
	keys, err := cluster.LoadKeyFile(cfg.Cluster.KeyFile)
	if err == nil {
		_, err = cluster.NewKeyring(keys...)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: cluster.key_file: %w", cfg.File, err)
	}
	return keys, nil
}

// setKeys swaps the keys (nil: none) and the verifier's options in place:
// documents are signed with the new signing key from the next request or
// write on, and the verifier keeps its replay memory.
func (c *clusterState) setKeys(cfg *config.Config, keys [][]byte) {
	if len(keys) == 0 {
		c.keys.Clear()
	} else if err := c.keys.Set(keys...); err != nil {
		panic(fmt.Sprintf("keys checked by readKeys refused: %v", err)) // unreachable
	}
	c.verifier.SetOptions(cfg.Cluster.MaxClockSkew, cfg.Cluster.AllowUnsigned)
}

// clusterSpec is what the configuration digests cover.
func clusterSpec(cfg *config.Config) cluster.ClusterSpec {
	spec := cluster.ClusterSpec{Seed: cfg.Cluster.Seed,
		Table: cluster.TableSpec{Rows: dataplane.TableRows, Algorithm: tableAlgorithm, SlowStart: cfg.Cluster.SlowStart}}
	for _, m := range cfg.Cluster.Members {
		ms := cluster.MemberSpec{Name: m.Name, UnderlayV4: m.UnderlayV4, UnderlayV6: m.UnderlayV6}
		if m.Weight != config.DefaultWeight {
			// The default is 0 in the digest: a cluster without weights
			// keeps the digest it had before them.
			ms.Weight = uint32(m.Weight)
		}
		spec.Members = append(spec.Members, ms)
	}
	for _, v := range cfg.VIPs {
		vs := cluster.VIPSpec{Addr: v.Addr}
		for _, s := range v.Services {
			vs.Services = append(vs.Services, cluster.Service{Proto: s.Proto, Port: s.Port})
		}
		spec.VIPs = append(spec.VIPs, vs)
	}
	return spec
}

// tableDigest digests a table by the inputs of its build
// (cluster.BuildDigest): the seed, rows and algorithm are in the
// configuration digest, so equal digests are equal rows, at no cost on the
// controller's loop.
func tableDigest(addr netip.Addr, backends []vip.Backend) cluster.Digest {
	bs := make([]cluster.TableBackend, len(backends))
	// Equal weights build the unweighted table, whatever their value:
	// digested without weights, as before weights existed.
	weighted := slices.ContainsFunc(backends, func(b vip.Backend) bool {
		return b.EffectiveWeight() != backends[0].EffectiveWeight()
	})
	for i, b := range backends {
		bs[i] = cluster.TableBackend{Name: b.Name, Primary: b.Role == vip.RolePrimary}
		if weighted {
			bs[i].Weight = b.EffectiveWeight()
		}
	}
	return cluster.BuildDigest(addr, bs)
}

// publish is the controller's Publish hook, called from its loop with every
// new document: the membership compares the members' digests with ours,
// and the etcd backend, if running, writes it (a change of table digests
// alone at most every digestRepublishEvery). It never blocks.
func (d *Daemon) publish(st cluster.NodeState) {
	d.members.SetLocal(st.Digests)
	c := d.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backend == nil {
		return
	}
	doc := st.Clone()
	now := time.Now()
	if c.last != nil && digestsOnly(c.last, doc) && now.Sub(c.lastAt) < digestRepublishEvery {
		c.pending = doc
		if c.timer == nil {
			c.timer = time.AfterFunc(digestRepublishEvery-now.Sub(c.lastAt), d.flushPending)
		}
		return
	}
	c.publishLocked(doc, now)
}

func (c *clusterState) publishLocked(doc *cluster.NodeState, now time.Time) {
	c.pending, c.last, c.lastAt = nil, doc, now
	c.backend.Publish(*doc)
}

// flushPending writes the digest-only change the rate limit held back.
func (d *Daemon) flushPending() {
	c := d.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil
	if c.pending != nil && c.backend != nil {
		c.publishLocked(c.pending, time.Now())
	}
}

// digestsOnly: b differs from a in its generation and table digests only.
func digestsOnly(a, b *cluster.NodeState) bool {
	x, y := a.Clone(), b.Clone()
	x.Generation, y.Generation = 0, 0
	if x.Digests != nil && y.Digests != nil {
		x.Digests.VIPs, y.Digests.VIPs = nil, nil
		x.Digests.TablesAt, y.Digests.TablesAt = 0, 0
		if !servicesEqual(a.Digests, b.Digests) {
			return false
		}
	}
	return x.Equal(y)
}

func servicesEqual(a, b *cluster.Digests) bool {
	if len(a.VIPs) != len(b.VIPs) {
		return false
	}
	for addr, v := range a.VIPs {
		if w, ok := b.VIPs[addr]; !ok || w.Services != v.Services {
			return false
		}
	}
	return true
}

// startSource starts the source of member states cfg asks for (the poller
// or the etcd backend), stopping the previous one (a reload). Under the
// same lock its reports take, it forgets the members the new config
// removed: the status lists them as a fresh start with the new config
// would (never).
func (d *Daemon) startSource(cfg *config.Config) error {
	c := d.cluster
	keep := map[string]bool{}
	for _, m := range cfg.Cluster.Members {
		if m.Name != cfg.Node.Name || cfg.Cluster.Backend == config.BackendEtcd {
			keep[m.Name] = true
		}
	}
	ctx, cancel := context.WithCancel(d.ctx)
	consume := func(u cluster.Update) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if ctx.Err() != nil {
			return // a reload replaced this source; its members may be gone
		}
		d.ctrl.SetPeers(u)
	}
	var src cluster.Source
	var backend *etcd.Backend
	switch cfg.Cluster.Backend {
	case config.BackendEtcd:
		ecfg, err := etcdConfig(cfg)
		if err != nil {
			cancel()
			return err
		}
		ecfg.Keys, ecfg.Verifier, ecfg.Membership, ecfg.Dialer = c.keys, c.verifier, d.members, d.etcdDialer
		if backend, err = etcd.New(d.log, ecfg, consume); err != nil {
			cancel()
			return fmt.Errorf("%s: cluster.etcd: %w", cfg.File, err)
		}
		src = backend
	default:
		var peers []cluster.Member
		for _, m := range cfg.Cluster.Members {
			if m.Name != cfg.Node.Name {
				peers = append(peers, cluster.Member{Name: m.Name, URL: m.StateURL.String()})
			}
		}
		src = cluster.NewPollSource(d.log, peers, cluster.PollOptions{
			Interval: cfg.Cluster.PollInterval, Timeout: cfg.Cluster.PollTimeout,
			Rise: cfg.Cluster.Rise, Fall: cfg.Cluster.Fall,
			Verifier: c.verifier, Membership: d.members,
		}, consume)
	}
	c.mu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	for _, v := range d.members.Views() {
		if !keep[v.Name] {
			d.members.Forget(v.Name)
		}
	}
	c.cancel, c.backend, c.last, c.pending = cancel, backend, nil, nil
	if c.kind != "" && c.kind != cfg.Cluster.Backend {
		// Documents from the other backend were signed at other times:
		// judged against them, the new backend's would look replayed.
		c.verifier.Reset()
	}
	c.kind = cfg.Cluster.Backend
	if backend == nil {
		d.members.SetBackend(cluster.BackendStatus{Backend: config.BackendPoll, Connected: true})
	} else if doc := d.ctrl.NodeState(); doc.Generation != 0 {
		c.publishLocked(&doc, time.Now()) // a switch to etcd: write what we have now
	}
	c.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := src.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("the source of member states stopped", "backend", cfg.Cluster.Backend, "error", err)
		}
	}()
	return nil
}

// stopSource stops the running source (at exit).
func (d *Daemon) stopSource() {
	c := d.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.backend = nil
}

// etcdConfig maps [cluster.etcd] onto the backend's Config (keys,
// verifier and membership are the daemon's).
func etcdConfig(cfg *config.Config) (etcd.Config, error) {
	e := cfg.Cluster.Etcd
	if e == nil {
		return etcd.Config{}, fmt.Errorf("%s: cluster.backend etcd without [cluster.etcd]", cfg.File)
	}
	ec := etcd.Config{
		Self: cfg.Node.Name, Endpoints: slices.Clone(e.Endpoints), Prefix: e.Prefix, LeaseTTL: e.LeaseTTL,
		DialTimeout: e.DialTimeout, RequestTimeout: e.RequestTimeout, Username: e.Username, Password: e.Password,
	}
	for _, m := range cfg.Cluster.Members {
		ec.Members = append(ec.Members, m.Name)
	}
	if e.TLS() {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if e.CAFile != "" {
			pem, err := os.ReadFile(e.CAFile)
			if err != nil {
				return ec, fmt.Errorf("%s: cluster.etcd.ca_file: reading: %w", cfg.File, err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return ec, fmt.Errorf("%s: cluster.etcd.ca_file: %s holds no PEM certificate", cfg.File, e.CAFile)
			}
		}
		if e.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
			if err != nil {
				return ec, fmt.Errorf("%s: cluster.etcd.cert_file: loading the client certificate: %w", cfg.File, err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		ec.TLS = t
	}
	return ec, nil
}

// servedState is the document the state server answers: the controller's,
// marked restarting (and one generation on) once the node announced an
// upgrade exit.
func (d *Daemon) servedState() cluster.NodeState {
	st := d.ctrl.NodeState()
	if until := d.cluster.restartUntil(); !until.IsZero() && st.Generation != 0 {
		st.Generation++
		st.RestartUntil = until
	}
	return st
}

func (c *clusterState) restartUntil() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarting
}

// announceRestart tells the peers, before an upgrade exit, to keep this node
// as it is for [cluster] restart_grace: the XDP program, routes and
// addresses stay, and a director that failed the node for the missed polls
// of the restart would move its rows away and back, breaking the flows
// that started in between. The state server answers the mark from now on;
// announceRestart waits until every poller has had a poll to see it: the
// longest jittered interval plus the timeout. The etcd backend needs no
// mark: the node's key lives as long as its lease, which outlives the
// restart.
func (d *Daemon) announceRestart() {
	cfg := d.config()
	now := time.Now()
	until := now.Add(cfg.Cluster.RestartGrace)
	d.writeRestart(until, now)
	c := d.cluster
	c.mu.Lock()
	etcd := c.backend != nil
	if !etcd {
		c.restarting = until
	}
	c.mu.Unlock()
	if etcd || len(cfg.Cluster.Members) < 2 {
		return
	}
	d.log.Info("asking the peers to keep this node while it restarts", "until", until.Format(time.RFC3339))
	select {
	case <-time.After(time.Duration(float64(cfg.Cluster.PollInterval)*1.1) + cfg.Cluster.PollTimeout):
	case <-d.ctx.Done():
	}
}

// writeRestart records the service checks' verdicts for the next vipd
// (statedir.RestartFile): it starts the checks of the VIPs healthy now
// from healthy, so it does not publish them unhealthy, and have the
// directors move its rows, while its checks rise again.
func (d *Daemon) writeRestart(until, now time.Time) {
	var healthy []netip.Addr
	for a, v := range d.ctrl.NodeState().VIPs {
		if v.Healthy {
			healthy = append(healthy, a)
		}
	}
	if err := d.state.WriteRestart(healthy, until, now); err != nil {
		d.log.Warn("recording the service checks for the next vipd: its checks start over", "error", err)
	}
}

// seedChecks starts the service checks of the VIPs an upgrade exit left
// healthy (statedir.RestartFile) from healthy, when this start is that
// restart's: the record is recent (its restart_until not passed) and the
// previous vipd left routes announced.
func (d *Daemon) seedChecks(r statedir.Restart, graceful bool, now time.Time) {
	if !graceful || !now.Before(r.Until) || len(r.Healthy) == 0 {
		return
	}
	seeds := make(map[netip.Addr]string, len(r.Healthy))
	for _, a := range r.Healthy {
		seeds[a] = "healthy before the upgrade restart; checking again"
	}
	d.checks.SeedHealthy(seeds)
	d.log.Info("service checks start from the verdicts of the vipd before the upgrade restart", "healthy", len(seeds))
}
