package monitoring

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// exposition writes one sample of every contract family (with its
// labels), leaving out skip.
func exposition(t *testing.T, skip ...string) string {
	t.Helper()
	contract, err := Contract()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, name := range sortedKeys(contract) {
		m := contract[name]
		if slices.Contains(skip, name) {
			continue
		}
		var ls []string
		for _, l := range m.Labels {
			ls = append(ls, fmt.Sprintf(`%s="a \"q\", b"`, l))
		}
		sel := name
		if len(ls) > 0 {
			sel += "{" + strings.Join(ls, ",") + "}"
		}
		fmt.Fprintf(&b, "# HELP %s x\n# TYPE %s %s\n", name, name, m.Type)
		if m.Type == "histogram" {
			bucket := name + `_bucket{le="+Inf"}`
			if len(ls) > 0 {
				bucket = name + "_bucket{" + strings.Join(ls, ",") + `,le="+Inf"}`
			}
			fmt.Fprintf(&b, "%s 1\n%s 1\n%s 1\n", bucket, strings.Replace(sel, name, name+"_sum", 1), strings.Replace(sel, name, name+"_count", 1))
			continue
		}
		fmt.Fprintf(&b, "%s 1\n", sel)
	}
	b.WriteString("# TYPE go_goroutines gauge\ngo_goroutines 7\n")
	return b.String()
}

func TestCheckLive(t *testing.T) {
	rep, err := CheckLive(strings.NewReader(exposition(t, "up")))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || len(rep.Waiting) != 0 {
		t.Errorf("the contract itself: problems %q, waiting %q", rep.Problems, rep.Waiting)
	}

	// A family an expression needs, missing; a family waiting for its
	// issue, missing; one vipd exports unlisted; one with a label too many.
	text := exposition(t, "up", "vipd_routing_session_up", "vipd_vip_bytes_total", "vipd_cluster_config_digest_mismatch") +
		"# TYPE vipd_surprise_total counter\nvipd_surprise_total 1\n"
	text = strings.Replace(text, `vipd_node_stopping 1`, `vipd_node_stopping{x="1"} 1`, 1)
	rep, err = CheckLive(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Problems, "\n")
	for _, want := range []string{
		"metrics.txt lists vipd_routing_session_up, which vipd does not export",
		`rule VipdRoutingSessionDown names vipd_routing_session_up, which vipd does not export`,
		"vipd exports vipd_surprise_total (counter), which metrics.txt does not list",
		"vipd_node_stopping has labels [x], metrics.txt says []",
		// Issues 11 and 12 landed: their families wait no longer.
		"metrics.txt lists vipd_cluster_config_digest_mismatch, which vipd does not export",
		"metrics.txt lists vipd_vip_bytes_total, which vipd does not export",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if len(rep.Waiting) != 0 {
		t.Errorf("waiting %q, want none (no family is marked until:)", rep.Waiting)
	}
}
