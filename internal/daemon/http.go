package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/metrics"
	"github.com/vipd/vipd/internal/statuspage"
)

// listenMetrics opens the metrics listener ([api] metrics_listen), before
// anything starts: a taken port fails the start.
func listenMetrics(cfg *config.Config) (net.Listener, error) {
	addr := cfg.API.MetricsListen.String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	return ln, nil
}

// serveMetrics serves the metrics listener: GET /metrics for Prometheus
// and the read-only status page at GET /. Nothing on it writes: every
// other method is refused (405), every other path is 404.
func (d *Daemon) serveMetrics(cfg *config.Config, ln net.Listener) {
	// Both read the status without the sessions: the collector asks the
	// advertiser for them once per scrape itself.
	status := func(ctx context.Context) (api.Status, error) { return d.status(ctx, false) }
	c := metrics.NewCollector(metrics.Sources{Status: status, Peers: d.adv.Peers, Protocol: metrics.ProtocolOf(cfg.Routing.Mode)})
	page := statuspage.New(d.Status, statuspage.Options{Logger: d.log})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(c, d.checkMetrics))
	// The page refuses anything but GET and HEAD itself, saying why.
	mux.Handle("/{$}", page)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	d.goServe("metrics", func() error {
		go func() {
			<-d.ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	// The page's live graphs need samples taken whether anyone looks or not.
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		page.Run(d.ctx)
	}()
}
