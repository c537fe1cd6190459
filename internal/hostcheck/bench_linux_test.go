package hostcheck

import (
	"context"
	"testing"

	"github.com/vipd/vipd/dataplane"
)

// BenchmarkRun times a full run of the checks (without network probes)
// against this machine, with the same run against a fixture tree as the
// baseline: the ratio is what reading the real /proc, /sys, ethtool,
// netlink and BPF probes costs over reading files.
//
//	go test -run XXX -bench Run ./internal/hostcheck/
func BenchmarkRun(b *testing.B) {
	spec := Spec{Interface: "eth0", Backend: true, LocalGUE: true, SwitchMTU: 1500, AttachMode: dataplane.AttachAuto}
	var fixtureNs float64
	b.Run("fixture", func(b *testing.B) {
		f := loadFixture(b, "virtio")
		for b.Loop() {
			Run(context.Background(), f, spec)
		}
		fixtureNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("system", func(b *testing.B) {
		spec.Interface = uplink(b)
		for b.Loop() {
			Run(context.Background(), System(), spec)
		}
		if fixtureNs > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fixtureNs, "x-fixture")
		}
	})
}
