package config

import (
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// BenchmarkParse times Parse of the reference config against the baseline
// of a bare toml.Decode of the same bytes into a map, in the same run, and
// reports the ratio (what validation and the position index cost on top of
// TOML decoding).
func BenchmarkParse(b *testing.B) {
	data := readFile(b, "../../examples/vipd.reference.toml")
	var parse, decode time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := Parse("vipd.toml", data); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		var m map[string]any
		if _, err := toml.Decode(string(data), &m); err != nil {
			b.Fatal(err)
		}
		parse += t1.Sub(t0)
		decode += time.Since(t1)
	}
	b.ReportMetric(float64(parse.Nanoseconds())/float64(b.N), "parse-ns/op")
	b.ReportMetric(float64(decode.Nanoseconds())/float64(b.N), "toml-decode-ns/op")
	b.ReportMetric(float64(parse)/float64(decode), "parse/decode")
}
