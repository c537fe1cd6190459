// Package metrics exposes vipd's state to Prometheus. It reads a status
// snapshot and the routing sessions (routing.Advertiser.Peers) at scrape
// time, so the numbers are never staler than the scrape and nothing in the
// controller has to remember to update a gauge.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/routing"
)

var (
	vipFacet = prometheus.NewDesc("vipd_vip_facet",
		"1 if the VIP's facet (programmed, advertised, bound, healthy, draining) holds on this node.",
		[]string{"vip", "facet"}, nil)
	vipTransitions = prometheus.NewDesc("vipd_vip_transitions_total",
		"Facet changes of the VIP since vipd started.", []string{"vip"}, nil)
	vipErrors = prometheus.NewDesc("vipd_vip_errors_total",
		"Failed advertiser, binder or dataplane calls for the VIP since vipd started.", []string{"vip"}, nil)
	vipRoute = prometheus.NewDesc("vipd_vip_route",
		"1 for the VIP's route as checked against the routing daemon: announced (claimed and exported), withdrawn, pending, no-session, diverged or unknown.",
		[]string{"vip", "state"}, nil)
	vipDiverged = prometheus.NewDesc("vipd_vip_diverged",
		"1 while the VIP's route diverges: what vipd wants, claims and the routing daemon exports disagree.", []string{"vip"}, nil)
	vipDivergences = prometheus.NewDesc("vipd_vip_divergences_total",
		"Divergences of the VIP's route confirmed since vipd started.", []string{"vip"}, nil)
	worldErr = prometheus.NewDesc("vipd_routing_world_error",
		"1 if the last read of the routing daemon's exported routes failed (the routes are unconfirmed).", nil, nil)
	resyncs = prometheus.NewDesc("vipd_routing_resyncs_total",
		"Resyncs of the advertiser asked for because the routing daemon disagreed with vipd's claims.", nil, nil)
	stateErr = prometheus.NewDesc("vipd_state_unsaved",
		"1 while a drain in effect could not be written to the state directory (it would not survive a restart).", nil, nil)
	nodeDraining = prometheus.NewDesc("vipd_node_draining",
		"1 while the node is draining (any phase other than active).", nil, nil)
	peerUp = prometheus.NewDesc("vipd_routing_peer_up",
		"1 if the routing session is up (BGP established, OSPF full).", []string{"peer"}, nil)
	peerRoutes = prometheus.NewDesc("vipd_routing_peer_routes_advertised",
		"Routes advertised to the peer.", []string{"peer"}, nil)
	peerUptime = prometheus.NewDesc("vipd_routing_peer_uptime_seconds",
		"How long the routing session has been up (0 when down or unknown).", []string{"peer"}, nil)
	peersErr = prometheus.NewDesc("vipd_routing_peers_error",
		"1 if listing the routing sessions for this scrape failed.", nil, nil)
	memberUp = prometheus.NewDesc("vipd_cluster_member_up",
		"1 if the member's state URL answers (after rise/fall).", []string{"member"}, nil)
	dpPackets = prometheus.NewDesc("vipd_dataplane_packets_total",
		"XDP program verdicts and drop reasons, summed over CPUs.", []string{"counter"}, nil)
	scrapeErr = prometheus.NewDesc("vipd_scrape_error",
		"1 if reading vipd's status for this scrape failed.", nil, nil)
)

// Collector turns a status snapshot and the routing sessions into metrics.
type Collector struct {
	status func(context.Context) (api.Status, error)
	peers  func(context.Context) ([]routing.Peer, error)
}

// NewCollector returns a collector reading status and peers (the
// advertiser's Peers) at every scrape.
func NewCollector(status func(context.Context) (api.Status, error), peers func(context.Context) ([]routing.Peer, error)) *Collector {
	return &Collector{status: status, peers: peers}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{vipFacet, vipTransitions, vipErrors, vipRoute, vipDiverged, vipDivergences,
		worldErr, resyncs, stateErr, nodeDraining, peerUp, peerRoutes, peerUptime, peersErr, memberUp, dpPackets, scrapeErr} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.collectPeers(ctx, ch)
	st, err := c.status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(scrapeErr, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(scrapeErr, prometheus.GaugeValue, 0)
	ch <- prometheus.MustNewConstMetric(nodeDraining, prometheus.GaugeValue, b2f(st.Phase != "" && st.Phase != "active"))
	ch <- prometheus.MustNewConstMetric(worldErr, prometheus.GaugeValue, b2f(st.World.Error != ""))
	ch <- prometheus.MustNewConstMetric(resyncs, prometheus.CounterValue, float64(st.World.Resyncs))
	ch <- prometheus.MustNewConstMetric(stateErr, prometheus.GaugeValue, b2f(st.StateError != ""))
	for _, v := range st.VIPs {
		a := v.Address.String()
		for facet, on := range map[string]bool{
			"programmed": v.Programmed, "advertised": v.Advertised, "bound": v.Bound,
			"healthy": v.Healthy, "draining": v.Draining,
		} {
			ch <- prometheus.MustNewConstMetric(vipFacet, prometheus.GaugeValue, b2f(on), a, facet)
		}
		ch <- prometheus.MustNewConstMetric(vipTransitions, prometheus.CounterValue, float64(v.Transitions), a)
		ch <- prometheus.MustNewConstMetric(vipErrors, prometheus.CounterValue, float64(v.Errors), a)
		if v.Route != "" {
			ch <- prometheus.MustNewConstMetric(vipRoute, prometheus.GaugeValue, 1, a, v.Route)
		}
		ch <- prometheus.MustNewConstMetric(vipDiverged, prometheus.GaugeValue, b2f(v.Diverged), a)
		ch <- prometheus.MustNewConstMetric(vipDivergences, prometheus.CounterValue, float64(v.Divergences), a)
	}
	for _, m := range st.Members {
		ch <- prometheus.MustNewConstMetric(memberUp, prometheus.GaugeValue, b2f(m.Up), m.Name)
	}
	if st.Dataplane != nil {
		for name, n := range st.Dataplane.Counters {
			ch <- prometheus.MustNewConstMetric(dpPackets, prometheus.CounterValue, float64(n), name)
		}
	}
}

// collectPeers exports one set of gauges per routing session.
func (c *Collector) collectPeers(ctx context.Context, ch chan<- prometheus.Metric) {
	peers, err := c.peers(ctx)
	ch <- prometheus.MustNewConstMetric(peersErr, prometheus.GaugeValue, b2f(err != nil))
	if err != nil {
		return
	}
	for _, p := range peers {
		ch <- prometheus.MustNewConstMetric(peerUp, prometheus.GaugeValue, b2f(p.Up), p.Name)
		ch <- prometheus.MustNewConstMetric(peerRoutes, prometheus.GaugeValue, float64(p.Advertised), p.Name)
		ch <- prometheus.MustNewConstMetric(peerUptime, prometheus.GaugeValue, p.Uptime.Seconds(), p.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler returns the /metrics handler for a registry holding cs (vipd's
// Collector) and the Go runtime and process collectors.
func Handler(cs ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(cs...)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// Serve serves /metrics on addr until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
