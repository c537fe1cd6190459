package hostcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"
)

// WriteTable writes the report for people: one row per check, the fix on
// its own line under each WARN or FAIL, and a summary line.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tFINDING")
	counts := map[Status]int{}
	for _, c := range r.Checks {
		counts[c.Status]++
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.ID, c.Finding)
		if c.Fix != "" && c.Status >= Warn {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing report table: %w", err)
	}
	_, err := fmt.Fprintf(w, "%d pass, %d skip, %d warn, %d fail\n",
		counts[Pass], counts[Skip], counts[Warn], counts[Fail])
	if err != nil {
		return fmt.Errorf("writing report table: %w", err)
	}
	return nil
}

// WriteJSON writes the report for machines, indented, with statuses as
// names ("PASS", ...) and the exit code.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	err := enc.Encode(struct {
		Checks   []Result `json:"checks"`
		ExitCode int      `json:"exit_code"`
	}{r.Checks, r.ExitCode()})
	if err != nil {
		return fmt.Errorf("writing report json: %w", err)
	}
	return nil
}

// Log logs every WARN and FAIL (vipd start-up): FAIL at error level, WARN
// at warn level, with the check id, the finding as reason and the fix.
func (r Report) Log(logger hclog.Logger) {
	for _, c := range r.Checks {
		switch c.Status {
		case Fail:
			logger.Error("host check failed", "check", c.ID, "reason", c.Finding, "fix", c.Fix)
		case Warn:
			logger.Warn("host check warning", "check", c.ID, "reason", c.Finding, "fix", c.Fix)
		}
	}
}
