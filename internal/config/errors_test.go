package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/fielderr"
)

// TestErrorsGrouped: 2,000 VIPs without a check make three error lines and
// one that counts the rest, not 2,000; errors of other kinds, and kinds
// with few errors, are all listed.
func TestErrorsGrouped(t *testing.T) {
	var b strings.Builder
	b.WriteString(strings.Split(base, "[[vip]]")[0])
	for i := range 2000 {
		fmt.Fprintf(&b, "[[vip]]\naddress = \"10.%d.%d.1\"\nservices = [\"tcp/80\"]\n\n", i/250, i%250)
	}
	// Two port errors with different values: one kind, under the limit.
	b.WriteString("[[vip]]\naddress = \"10.99.0.1\"\nservices = [\"tcp/70000\"]\ncheck = { type = \"none\" }\n\n")
	b.WriteString("[[vip]]\naddress = \"10.99.0.2\"\nservices = [\"tcp/80000\"]\ncheck = { type = \"none\" }\n\n")
	b.WriteString("[routing]" + strings.SplitN(base, "[routing]", 2)[1])
	_, err := Parse("big.toml", []byte(b.String()))
	if err == nil {
		t.Fatal("no error")
	}
	var lines []string
	for _, e := range fielderr.All(err) {
		lines = append(lines, e.Error())
	}
	if len(lines) != 6 {
		t.Fatalf("%d error lines, want 3 + 1 counting line + 2 port errors:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i := range 3 {
		if !strings.Contains(lines[i], fmt.Sprintf("vip[%d].check: missing section [vip.check]", i)) {
			t.Errorf("line %d = %q, want vip[%d]'s missing check", i, lines[i], i)
		}
	}
	want := "big.toml: vip[*].check: and 1,997 more VIPs with this error (lines "
	if !strings.HasPrefix(lines[3], want) || !strings.Contains(lines[3], "missing section [vip.check]") {
		t.Errorf("counting line %q, want it to start %q and say what the error is", lines[3], want)
	}
	for i, port := range []string{"70000", "80000"} {
		if l := lines[4+i]; !strings.Contains(l, "vip[") || !strings.Contains(l, port) {
			t.Errorf("line %d = %q, want the port %s error", 4+i, l, port)
		}
	}
}

// TestErrorsGroupedWrap: the counting line wraps its kind's error, so
// errors.Is still finds, say, an unknown key among the grouped ones.
func TestErrorsGroupedWrap(t *testing.T) {
	errs := []*Error{}
	for i := range 5 {
		errs = append(errs, &Error{File: "f", Line: 10 + i, Item: fmt.Sprintf("vip[%d].chekc", i), Err: ErrUnknownKey})
	}
	got := groupKinds(errs)
	if len(got) != GroupAfter+1 {
		t.Fatalf("%d errors, want %d", len(got), GroupAfter+1)
	}
	last := got[GroupAfter]
	if !errors.Is(last, ErrUnknownKey) || last.Item != "vip[*].chekc" ||
		last.Error() != "f: vip[*].chekc: and 2 more VIPs with this error (lines 13-14): unknown key" {
		t.Errorf("counting line %q (wraps ErrUnknownKey: %t)", last.Error(), errors.Is(last, ErrUnknownKey))
	}
}
