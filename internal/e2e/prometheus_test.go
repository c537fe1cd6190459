package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/vipd/vipd/examples/lab/labconf"
	"github.com/vipd/vipd/monitoring"
)

// metricsPort is where the lab nodes serve /metrics and the status page
// when withMetrics gives them a listener.
const metricsPort = 9181

// prometheus is a real Prometheus (Debian's package) in the lab's router
// namespace, scraping the three nodes every second and evaluating vipd's
// shipped alert rules.
type prometheus struct {
	l    *lab
	addr string // in the router namespace
}

// startPrometheus starts Prometheus in the router namespace; nil when it
// is not installed (outside CI). It is stopped, and its log shown on
// failure, in t.Cleanup.
func startPrometheus(t *testing.T, l *lab) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		// Not a skip: the lab test that calls this has more to check.
		if os.Getenv("CI") == "true" {
			t.Fatalf("prometheus must be installed in CI (make deps): %v", err)
		}
		t.Logf("not checking the lab through Prometheus: %v (make deps installs it)", err)
		return nil
	}
	dir := filepath.Join(l.run, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, n := range labconf.Nodes {
		targets = append(targets, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", n.Addr, metricsPort)))
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: vipd
    static_configs:
      - targets: [%s]
`, filepath.Join(repoRoot(), "monitoring", "vipd-alerts.yml"), strings.Join(targets, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{l: l, addr: "127.0.0.1:9090"}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.exec("r1", bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+p.addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log (tail):\n%s", tail(string(data), 20))
		}
	})
	return p
}

// routerHTTP is an HTTP client whose connections are made in the lab's
// router namespace (where Prometheus listens and the nodes' listeners are
// routed): no process per request.
func (l *lab) routerHTTP() *http.Client {
	name := l.ns("r1")
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, name, network, addr)
		},
	}}
}

// dialIn dials addr from inside the named network namespace: the socket
// belongs to the namespace it is created in, whichever thread uses it
// later.
func dialIn(ctx context.Context, nsName, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := netns.GetFromName(nsName)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("opening namespace %s: %w", nsName, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering namespace %s: %w", nsName, err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if netns.Set(orig) == nil {
		// Only a thread back in its own namespace may serve others; one
		// that is not dies with this goroutine's lock.
		runtime.UnlockOSThread()
	}
	return c, err
}

// fetch GETs url from the router namespace and returns the status code and
// body.
func (l *lab) fetch(method, url string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, nil, err
	}
	hc := l.routerHTTP()
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, body, err
}

// get asks Prometheus's HTTP API.
func (p *prometheus) get(path string, q url.Values, out any) error {
	u := "http://" + p.addr + path
	if q != nil {
		u += "?" + q.Encode()
	}
	_, data, err := p.l.fetch(http.MethodGet, u)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("GET %s: %w: %.200s", path, err, data)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs a PromQL instant query.
func (p *prometheus) query(expr string) ([]promSample, error) {
	var res struct {
		Result []promSample `json:"result"`
	}
	err := p.get("/api/v1/query", url.Values{"query": {expr}}, &res)
	return res.Result, err
}

// has reports whether expr returns exactly n series (an error is "no").
func (p *prometheus) has(expr string, n int) bool {
	s, err := p.query(expr)
	return err == nil && len(s) == n
}

func instance(node string) string {
	n, _ := labconf.NodeNamed(node)
	return fmt.Sprintf("%s:%d", n.Addr, metricsPort)
}

// withMetrics gives every lab node a metrics listener (before its vipd
// starts: [api] is the last section lab.sh writes).
func withMetrics(l *lab) {
	for _, n := range labconf.Nodes {
		path := filepath.Join(l.run, n.Name+".toml")
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			l.t.Fatal(err)
		}
		fmt.Fprintf(f, "metrics_listen = %q\n", instance(n.Name))
		f.Close()
	}
}

// checkScraped waits until Prometheus scrapes the three nodes, then holds
// each node's live /metrics to monitoring/'s contract: every family it
// exports listed with its type and labels, every listed family exported
// (but those waiting for their issue), every rule and dashboard expression
// naming only what the node exports.
func (p *prometheus) checkScraped(t *testing.T) {
	t.Helper()
	p.l.waitFor("Prometheus scraping the three nodes", 30*time.Second, func() bool {
		return p.has(`up{job="vipd"} == 1`, 3) && p.has(`vipd_vip_advertised{vip="`+vipAddr+`"} == 1`, 3)
	})
	for _, n := range labconf.Nodes {
		code, body, err := p.l.fetch(http.MethodGet, "http://"+instance(n.Name)+"/metrics")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /metrics of %s: %d %v", n.Name, code, err)
		}
		rep, err := monitoring.CheckLive(strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range rep.Problems {
			t.Errorf("%s's /metrics: %s", n.Name, pr)
		}
		t.Logf("%s: %d vipd_ families; waiting for their issue: %v", n.Name, rep.Families, rep.Waiting)
	}
}

// checkDrainedReadBack reads node's finished drain back from Prometheus:
// its phase drained, the VIP unbound there and announced by the two
// others, and the draining phase seen on the way.
func (p *prometheus) checkDrainedReadBack(t *testing.T, node string) {
	t.Helper()
	in := instance(node)
	start := time.Now()
	p.l.waitFor("Prometheus: "+node+" drained, the VIP announced by the two others", 15*time.Second, func() bool {
		return p.has(`vipd_node_drain_phase{instance="`+in+`",phase="drained"} == 1`, 1) &&
			p.has(`vipd_vip_bound{instance="`+in+`",vip="`+vipAddr+`"} == 0`, 1) &&
			p.has(`vipd_vip_advertised{instance="`+in+`",vip="`+vipAddr+`"} == 0`, 1) &&
			p.has(`sum(vipd_vip_advertised{vip="`+vipAddr+`"}) == 2`, 1)
	})
	t.Logf("%s's drain read back from Prometheus %v after vipctl status said drained", node, time.Since(start).Round(100*time.Millisecond))
	// 1s scrapes, a drain of several seconds: its steps were scraped.
	if s, err := p.query(`max_over_time(vipd_node_drain_phase{instance="` + in + `",phase="draining"}[2m])`); err != nil ||
		len(s) != 1 || s[0].Value[1] != "1" {
		t.Errorf("Prometheus never saw %s in phase draining: %v %v", node, s, err)
	}
	// The status page on the same listener shows it, and writes nothing.
	code, page, err := p.l.fetch(http.MethodGet, "http://"+in+"/")
	if err != nil || code != http.StatusOK || !strings.Contains(string(page), "node drained") || !strings.Contains(string(page), vipAddr) {
		t.Errorf("%s's status page: %d %v\n%.400s", node, code, err, page)
	}
	if code, _, err := p.l.fetch(http.MethodPost, "http://"+in+"/"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST to %s's status page: %d %v, want 405", node, code, err)
	}
}

// checkRules: every shipped rule evaluated against the lab's live series
// without an error, and none fires (the lab is healthy; its drain is an
// operator's, which no rule calls a problem).
func (p *prometheus) checkRules(t *testing.T) {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
				State     string `json:"state"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", nil, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
			}
			if r.State == "firing" {
				t.Errorf("rule %s fires on the lab", r.Name)
			}
		}
	}
	if n == 0 {
		t.Error("Prometheus loaded no rules from monitoring/vipd-alerts.yml")
	}
	t.Logf("%d rules evaluated against the lab", n)
}
