package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vipd/vipd/internal/api"
)

// trafficVerdicts are the columns of the per-VIP traffic table, as
// api.Traffic names them.
var trafficVerdicts = []struct{ verdict, head string }{
	{"encapsulated", "ENCAPSULATED"}, {"local", "LOCAL"}, {"second_chance", "SECOND CHANCE"}, {"loop_guard", "LOOP GUARD"},
}

// printTraffic prints the dataplane's per-VIP counters, packets (bytes)
// per verdict, when the dataplane keeps them.
func printTraffic(out io.Writer, vips []api.VIPStatus) {
	have := false
	for _, v := range vips {
		have = have || len(v.Traffic) > 0
	}
	if !have {
		return
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	heads := []string{"VIP"}
	for _, c := range trafficVerdicts {
		heads = append(heads, c.head)
	}
	fmt.Fprintln(w, strings.Join(heads, "\t")+"\t")
	for _, v := range vips {
		if len(v.Traffic) == 0 {
			continue
		}
		cells := []string{v.Address.String()}
		for _, c := range trafficVerdicts {
			cell := "-"
			for _, t := range v.Traffic {
				if t.Verdict == c.verdict {
					cell = fmt.Sprintf("%d (%s)", t.Packets, bytesWord(t.Bytes))
				}
			}
			cells = append(cells, cell)
		}
		fmt.Fprintln(w, strings.Join(cells, "\t")+"\t")
	}
	w.Flush()
}

// memoryLine says what the dataplane's maps take and how much of each
// limit is in use.
func memoryLine(m *api.DataplaneMemory) string {
	return fmt.Sprintf("memory %s (%d of %d tables, %s); VIPs %d of %d, VIP entries %d of %d, backends %d of %d",
		bytesWord(m.TotalBytes), m.Tables, m.MaxTables, bytesWord(m.TableBytes), m.VIPs, m.MaxVIPs,
		m.VIPKeys, m.MaxVIPKeys, m.Backends, m.MaxBackends)
}

// bytesWord writes n bytes in binary units: "512 B", "1.5 KiB", "28.3 MiB".
func bytesWord(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
