package monitoring

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []Selector
	}{
		{`up{job="vipd"} == 0`, []Selector{{"up", []string{"job"}}}},
		{`vipd_routing_session_up == 0`, []Selector{{Name: "vipd_routing_session_up"}}},
		{`max by (vip) (vipd_vip_advertised and on (instance, vip) (vipd_vip_configured == 1)) == 0`,
			[]Selector{{Name: "vipd_vip_advertised"}, {Name: "vipd_vip_configured"}}},
		{`increase(vipd_dataplane_drops_total{reason="loop_guard"}[5m]) > 0`,
			[]Selector{{"vipd_dataplane_drops_total", []string{"reason"}}}},
		{`histogram_quantile(0.99, sum by (vip, le) (rate(x_bucket{instance=~"$instance", vip=~"$vip"}[$__rate_interval])))`,
			[]Selector{{"x_bucket", []string{"instance", "vip"}}}},
		{`count(a == 0) or vector(0)`, []Selector{{Name: "a"}}},
		{`8 * sum(rate(b{l!="x,}"}[1m] offset 5m)) / 1e-3`, []Selector{{"b", []string{"l"}}}},
		{`sum(a) without (vip) > bool 1 unless ignoring (x) group_left (y) c`, []Selector{{Name: "a"}, {Name: "c"}}},
	} {
		got, err := Selectors(tc.expr)
		if err != nil {
			t.Errorf("Selectors(%q): %v", tc.expr, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Selectors(%q) (-want +got)\n%s", tc.expr, diff)
		}
	}
	for _, bad := range []string{`{__name__=~"vipd_.*"}`, `a{b="c"`, `rate(a[5m)`, `a @ 1`} {
		if _, err := Selectors(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("Selectors(%q) = %v, want ErrSyntax", bad, err)
		}
	}
}

// TestExprsNameOnlyContractMetrics is the check the issue asks for: any
// expression in the rules or the dashboard that names a metric (or a label
// of it) outside the contract fails. Phase 2 checks the contract itself
// against a live /metrics in the lab.
func TestExprsNameOnlyContractMetrics(t *testing.T) {
	contract, err := Contract()
	if err != nil {
		t.Fatal(err)
	}
	exprs, err := Exprs()
	if err != nil {
		t.Fatal(err)
	}
	targetLabels := []string{"job", "instance"}
	used := map[string]bool{}
	for where, e := range exprs {
		sels, err := Selectors(e)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if len(sels) == 0 {
			t.Errorf("%s: %q names no metric", where, e)
		}
		for _, s := range sels {
			m, ok := Family(contract, s.Name)
			if !ok {
				t.Errorf("%s: %s is not in metrics.txt", where, s.Name)
				continue
			}
			used[m.Name] = true
			for _, l := range s.Labels {
				if !slices.Contains(m.Labels, l) && !slices.Contains(targetLabels, l) {
					t.Errorf("%s: %s has no label %q (metrics.txt: %v)", where, s.Name, l, m.Labels)
				}
			}
		}
	}
	t.Logf("%d expressions name %d of the %d contract families", len(exprs), len(used), len(contract))
}

func TestContractConventions(t *testing.T) {
	contract, err := Contract()
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range contract {
		if name == "up" {
			continue
		}
		if !strings.HasPrefix(name, "vipd_") {
			t.Errorf("%s: not in the vipd_ namespace", name)
		}
		switch m.Type {
		case "counter":
			if !strings.HasSuffix(name, "_total") {
				t.Errorf("%s: a counter must end in _total", name)
			}
		case "gauge", "histogram":
			if strings.HasSuffix(name, "_total") {
				t.Errorf("%s: only counters end in _total", name)
			}
		default:
			t.Errorf("%s: unknown type %q", name, m.Type)
		}
		if (strings.Contains(name, "_duration") || strings.Contains(name, "uptime")) && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s: durations are in seconds and say so", name)
		}
		if strings.HasPrefix(name, "vipd_vip_") && !slices.Contains(m.Labels, "vip") {
			t.Errorf("%s: a per-VIP family needs the vip label", name)
		}
	}
	if _, ok := contract["vipd_build_info"]; !ok {
		t.Error("vipd_build_info missing")
	}
}

func TestRulesAreDocumentedAndTested(t *testing.T) {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("vipd-alerts.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(data, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	want := []string{"VipdRoutingSessionDown", "VipdVIPWithheld", "VipdVIPNotAdvertisedAnywhere", "VipdLoopGuardDrops",
		"VipdLoForwardingReset", "VipdConfigDigestMismatch", "VipdControllerErrorsRetrying"}
	var have []string
	for _, r := range rules {
		have = append(have, r.Alert)
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("%s: vipd-alerts.test.yml must show it firing (%t) and quiet (%t)", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
	}
	for _, w := range want {
		if !slices.Contains(have, w) {
			t.Errorf("no alert %s", w)
		}
	}
}

func TestDashboard(t *testing.T) {
	d, err := LoadDashboard()
	if err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs a uid and a title: %q %q", d.UID, d.Title)
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no query", p.ID, p.Title)
		}
	}
}

// TestPromtool runs Prometheus's own checker and rule unit tests.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; make deps installs it)")
	}
	for _, args := range [][]string{{"check", "rules", "vipd-alerts.yml"}, {"test", "rules", "vipd-alerts.test.yml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s: %s", strings.Join(args, " "), strings.Join(strings.Fields(string(out)), " "))
	}
}
