package cluster

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// bigState is a node state with n VIPs, as a large node would serve.
func bigState(n int) []byte {
	st := NodeState{Node: "n1", Generation: 42, VIPs: map[netip.Addr]VIPState{}}
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		st.VIPs[a] = VIPState{State: StateActive, Healthy: i%7 != 0, Reason: "service unhealthy"}
	}
	b, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	return b
}

// BenchmarkDecodeNodeState measures decoding with validation against plain
// json.Unmarshal of the same document, measured in the same run, and
// reports the ratio (validation overhead) as "x-unmarshal".
func BenchmarkDecodeNodeState(b *testing.B) {
	for _, n := range []int{10, 1000} {
		doc := bigState(n)
		b.Run(fmt.Sprintf("vips=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := DecodeNodeState(doc, "n1"); err != nil {
					b.Fatal(err)
				}
			}
			// The baseline runs as many times, outside the timer.
			start := time.Now()
			for range b.N {
				var st NodeState
				if err := json.Unmarshal(doc, &st); err != nil {
					b.Fatal(err)
				}
			}
			base := time.Since(start)
			b.ReportMetric(float64(b.Elapsed())/float64(base), "x-unmarshal")
		})
	}
}
