// Package metrics exposes vipd's state to Prometheus under the contract
// in monitoring/metrics.txt (counters end in _total, durations in
// _seconds, one family per fact, state sets as a label, a vip label on
// everything per VIP). It reads a status snapshot and the routing sessions
// (routing.Advertiser.Peers) at scrape time, so the numbers are never
// staler than the scrape and nothing in the controller has to remember to
// update a gauge. The one thing a snapshot cannot give, the service
// checks' results and durations, Checks records as they happen.
package metrics

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/buildinfo"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/routing"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	buildInfo = desc("vipd_build_info",
		"Always 1; the labels say which vipd runs.", "version", "revision", "goversion")
	reloadOK = desc("vipd_config_last_reload_successful",
		"1 if the last config reload (SIGHUP) applied, or none was tried; 0 while the previous config keeps running after a refused one.")
	reloadTime = desc("vipd_config_last_reload_success_timestamp_seconds",
		"When the running config was loaded (the start, or the last reload that applied), in Unix seconds.")
	statusErr = desc("vipd_status_error",
		"1 if reading vipd's status for this scrape failed (the other vipd_ families are then missing).")
	drainPhase = desc("vipd_node_drain_phase",
		"The node drain phase, one series per phase, 1 for the current one: active, withdrawing, draining, inactive, drained.", "phase")
	stopping = desc("vipd_node_stopping",
		"1 while vipd drains the node before exiting (SIGTERM, systemctl stop).")
	stateUnsaved = desc("vipd_state_unsaved",
		"1 while a drain in effect could not be written to the state directory (it would not survive a restart).")

	vipConfigured = desc("vipd_vip_configured", "1 if the VIP is in the running config; 0 for one a reload removed, on its way out.", "vip")
	vipProgrammed = desc("vipd_vip_programmed", "1 if the XDP maps hold the VIP and its table: this node can forward it.", "vip")
	vipAdvertised = desc("vipd_vip_advertised", "1 if vipd announces a route for the VIP (with or without the drain attributes).", "vip")
	vipBound      = desc("vipd_vip_bound", "1 if the VIP is on lo and in the dataplane's bound set: this node accepts its decapsulated traffic.", "vip")
	vipHealthy    = desc("vipd_vip_healthy", "1 if the VIP's local service check passes.", "vip")
	vipDraining   = desc("vipd_vip_draining", "1 if a drain of the VIP or of the node is in effect.", "vip")
	vipHeld       = desc("vipd_vip_held", "1 while announcing the VIP is vetoed (no IPv6 route back to the clients).", "vip")
	vipServe      = desc("vipd_vip_serve_state",
		"What this node publishes to its peers for the VIP, one series per state, 1 for the current one: active, draining, inactive.", "vip", "state")
	vipBackends = desc("vipd_vip_backends",
		"Members in the VIP's programmed forwarding table, by role (primary, secondary).", "vip", "role")
	vipTransitions = desc("vipd_vip_transitions_total", "Facet changes of the VIP since vipd started.", "vip")
	vipErrors      = desc("vipd_vip_errors_total", "Failed advertiser, binder or dataplane calls for the VIP since vipd started.", "vip")
	vipRoute       = desc("vipd_vip_route",
		"The VIP's route as checked against the routing daemon: one series at 1, for the current state (announced, withdrawn, pending, no-session, diverged, unknown).",
		"vip", "state")
	vipDiverged    = desc("vipd_vip_diverged", "1 while the VIP's route diverges: what vipd wants, claims and the routing daemon exports disagree.", "vip")
	vipDivergences = desc("vipd_vip_divergences_total", "Divergences of the VIP's route confirmed since vipd started.", "vip")
	vipRebinds     = desc("vipd_vip_rebinds_total", "Binds of the VIP to lo again after someone else removed it, since vipd started.", "vip")
	// The per-VIP traffic families (issue 11's dataplane counters); only
	// exported when the dataplane keeps them (api.VIPStatus.Traffic).
	vipPackets = desc("vipd_vip_packets_total", "Packets of the VIP by XDP verdict (encapsulated, local, second_chance, loop_guard), summed over CPUs.", "vip", "verdict")
	vipBytes   = desc("vipd_vip_bytes_total", "Bytes (of the client's IP packets) of the VIP by XDP verdict, summed over CPUs.", "vip", "verdict")

	sessionUp     = desc("vipd_routing_session_up", "1 if the routing session is up (BGP established, OSPF full).", "peer", "protocol")
	sessionUptime = desc("vipd_routing_session_uptime_seconds", "How long the BGP session has been established (0 when down, and for OSPF).", "peer", "protocol")
	sessionRoutes = desc("vipd_routing_session_routes_advertised", "VIP routes the session has been sent.", "peer", "protocol")
	sessionsErr   = desc("vipd_routing_sessions_error", "1 if listing the routing sessions for this scrape failed.")
	worldErr      = desc("vipd_routing_world_error", "1 if the last read of the routing daemon's exported routes failed (the routes are unconfirmed).")
	resyncs       = desc("vipd_routing_resyncs_total", "Resyncs of the advertiser asked for because the routing daemon disagreed with vipd's claims.")

	memberUp = desc("vipd_cluster_member_up", "1 if the member's node state answers (after rise/fall).", "member")
	// The cluster state's trust and consistency (docs/cluster.md).
	memberRejected = desc("vipd_cluster_documents_rejected_total",
		"Node-state documents of the member this node refused, by reason (invalid, unsigned, wrong-key, forged, wrong-node, future, stale, replayed).",
		"member", "reason")
	memberDigest = desc("vipd_cluster_config_digest_mismatch",
		"1 if the member publishes another cluster configuration digest than this node (members, seed, table parameters, VIPs and services).", "member")
	memberLag = desc("vipd_cluster_member_lag_seconds",
		"Seconds since this node last accepted a document of the member (since vipd started if never).", "member")
	// The data-path probes (docs/cluster.md, "Data-path probes").
	probeRTT = desc("vipd_cluster_probe_rtt_seconds",
		"Round trip of the last answered data-path probe (GUE, answered by the member's XDP program) to the member.", "member")
	probeFailures = desc("vipd_cluster_probe_failures_total", "Data-path probes to the member that went unanswered.", "member")
	memberDemoted = desc("vipd_cluster_member_demoted",
		"1 while this node's data-path probes demote the member (this node included): not a primary in this node's tables, only a second hop.", "member")
	probeFailOpen = desc("vipd_cluster_probe_fail_open",
		"1 while the data-path probes fail to every member and so demote none (fail open).")
	backendFrozen = desc("vipd_cluster_backend_frozen",
		"1 while the etcd backend is frozen (quorum lost or unreachable): the member states are the last snapshot, kept.")

	dpPackets     = desc("vipd_dataplane_packets_total", "Packets by XDP verdict (drops are vipd_dataplane_drops_total), summed over CPUs.", "verdict")
	dpDrops       = desc("vipd_dataplane_drops_total", "Packets the XDP program dropped, by reason, summed over CPUs.", "reason")
	dpICMP        = desc("vipd_dataplane_icmp_steered_total", "ICMP errors steered to a backend by their inner tuple (also counted under their tx verdict).")
	dpLocalSecond = desc("vipd_dataplane_local_second_chance_total", "Segments the local primary sent on to the secondary, which holds their flow (also counted under their tx verdict).")
	dpLoRestored  = desc("vipd_dataplane_lo_forwarding_restored_total", "Times vipd found forwarding on lo turned off (the program's route lookups need it) and turned it on again.")
	dpCountersErr = desc("vipd_dataplane_counters_error", "1 if reading the XDP program's counters for this scrape failed.")
)

// Dataplane counters (api.Dataplane.Counters, the program's enum stat) that
// are facts of their own rather than verdicts: each packet they count is
// also counted under a tx verdict.
var ownFamily = map[string]*prometheus.Desc{
	"director_icmp":                dpICMP,
	"director_local_second_chance": dpLocalSecond,
}

// Phases, serve states: the state sets' members, in order.
var (
	phases      = []string{"active", "withdrawing", "draining", "inactive", "drained"}
	serveStates = []string{"active", "draining", "inactive"}
	roles       = []string{"primary", "secondary"}
)

// Sources are what a Collector reads at every scrape.
type Sources struct {
	// Status is the daemon's status (without the routing sessions).
	Status func(context.Context) (api.Status, error)
	// Peers are the routing sessions (the advertiser's Peers).
	Peers func(context.Context) ([]routing.Peer, error)
	// Protocol labels every session: "bgp" or "ospf".
	Protocol string
}

// ProtocolOf is the protocol label of a routing mode's sessions.
func ProtocolOf(m routing.Mode) string {
	if m == routing.ModeBirdOSPF {
		return "ospf"
	}
	return string(m)
}

// Collector turns a status snapshot and the routing sessions into metrics.
type Collector struct {
	src   Sources
	build buildinfo.Info
}

// NewCollector returns a collector reading src at every scrape.
func NewCollector(src Sources) *Collector {
	return &Collector{src: src, build: buildinfo.Get()}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		buildInfo, reloadOK, reloadTime, statusErr, drainPhase, stopping, stateUnsaved,
		vipConfigured, vipProgrammed, vipAdvertised, vipBound, vipHealthy, vipDraining, vipHeld, vipServe, vipBackends,
		vipTransitions, vipErrors, vipRoute, vipDiverged, vipDivergences, vipRebinds, vipPackets, vipBytes,
		sessionUp, sessionUptime, sessionRoutes, sessionsErr, worldErr, resyncs, memberUp,
		memberRejected, memberDigest, memberLag, backendFrozen, probeRTT, probeFailures, memberDemoted, probeFailOpen,
		dpPackets, dpDrops, dpICMP, dpLocalSecond, dpLoRestored, dpCountersErr,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(buildInfo, 1, c.build.Version, c.build.Revision, c.build.GoVersion)
	c.collectSessions(ctx, gauge)
	st, err := c.src.Status(ctx)
	if err != nil {
		gauge(statusErr, 1)
		return
	}
	gauge(statusErr, 0)
	gauge(reloadOK, b2f(st.LastReload == nil || st.LastReload.OK))
	if !st.ConfigLoaded.IsZero() {
		gauge(reloadTime, float64(st.ConfigLoaded.UnixNano())/1e9)
	}
	for _, p := range phases {
		gauge(drainPhase, b2f(st.Phase == p), p)
	}
	gauge(stopping, b2f(st.Stopping))
	gauge(stateUnsaved, b2f(st.StateError != ""))
	gauge(worldErr, b2f(st.World.Error != ""))
	counter(resyncs, st.World.Resyncs)
	for _, v := range st.VIPs {
		collectVIP(v, gauge, counter)
	}
	collectCluster(st, gauge, counter)
	if d := st.Dataplane; d != nil {
		gauge(dpCountersErr, b2f(d.Counters == nil && d.Error != ""))
		counter(dpLoRestored, d.LoForwardingRestored)
		collectCounters(d.Counters, counter)
	}
}

func collectVIP(v api.VIPStatus, gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, uint64, ...string)) {
	a := v.Address.String()
	gauge(vipConfigured, b2f(v.Configured), a)
	gauge(vipProgrammed, b2f(v.Programmed), a)
	gauge(vipAdvertised, b2f(v.Advertised), a)
	gauge(vipBound, b2f(v.Bound), a)
	gauge(vipHealthy, b2f(v.Healthy), a)
	gauge(vipDraining, b2f(v.Draining), a)
	gauge(vipHeld, b2f(v.Held != ""), a)
	for _, s := range serveStates {
		gauge(vipServe, b2f(v.ServeState == s), a, s)
	}
	n := map[string]int{}
	for _, b := range v.Backends {
		n[b.Role]++
	}
	for _, r := range roles {
		gauge(vipBackends, float64(n[r]), a, r)
	}
	counter(vipTransitions, v.Transitions, a)
	counter(vipErrors, v.Errors, a)
	if v.Route != "" {
		gauge(vipRoute, 1, a, v.Route)
	}
	gauge(vipDiverged, b2f(v.Diverged), a)
	counter(vipDivergences, v.Divergences, a)
	counter(vipRebinds, v.Rebinds, a)
	for _, t := range v.Traffic {
		counter(vipPackets, t.Packets, a, t.Verdict)
		counter(vipBytes, t.Bytes, a, t.Verdict)
	}
}

// collectCounters sorts the XDP program's counters into their families:
// drop_* are drop reasons, the steered ICMP and local second chance are
// facts of their own, the rest are verdicts.
func collectCounters(counters map[string]uint64, counter func(*prometheus.Desc, uint64, ...string)) {
	for name, n := range counters {
		if d, ok := ownFamily[name]; ok {
			counter(d, n)
			continue
		}
		if reason, ok := strings.CutPrefix(name, "drop_"); ok {
			counter(dpDrops, n, reason)
			continue
		}
		counter(dpPackets, n, name)
	}
}

// collectSessions exports one set of gauges per routing session.
func (c *Collector) collectSessions(ctx context.Context, gauge func(*prometheus.Desc, float64, ...string)) {
	peers, err := c.src.Peers(ctx)
	gauge(sessionsErr, b2f(err != nil))
	if err != nil {
		return
	}
	for _, p := range peers {
		gauge(sessionUp, b2f(p.Up), p.Name, c.src.Protocol)
		gauge(sessionRoutes, float64(p.Advertised), p.Name, c.src.Protocol)
		gauge(sessionUptime, p.Uptime.Seconds(), p.Name, c.src.Protocol)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler returns the /metrics handler for a registry holding cs (vipd's
// Collector and Checks) and the Go runtime and process collectors.
func Handler(cs ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(cs...)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// collectCluster exports the members and the backend; every reason of
// every member is exported, at 0 until a document is refused for it.
func collectCluster(st api.Status, gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, uint64, ...string)) {
	for _, m := range st.Members {
		gauge(memberUp, b2f(m.Up), m.Name)
		for _, r := range cluster.Reasons() {
			counter(memberRejected, m.Rejected[string(r)], m.Name, string(r))
		}
		gauge(memberDigest, b2f(m.ConfigDiffers), m.Name)
		lag := m.LagSeconds
		if m.LastSeen.IsZero() && !st.Started.IsZero() {
			lag = time.Since(st.Started).Seconds()
		}
		gauge(memberLag, lag, m.Name)
	}
	if c := st.Cluster; c != nil {
		gauge(backendFrozen, b2f(c.Frozen))
	}
	if p := st.Probes; p != nil {
		for _, m := range p.Members {
			gauge(memberDemoted, b2f(m.Demoted != ""), m.Name)
			if m.Self {
				continue // not probed itself: no round trip of its own
			}
			gauge(probeRTT, m.RTTSeconds, m.Name)
			counter(probeFailures, m.Failures, m.Name)
		}
		gauge(probeFailOpen, b2f(p.Note != ""))
	}
}
