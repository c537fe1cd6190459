package config

import (
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/vipd/vipd/internal/health"
	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/bird"
)

// sectionTypes maps each Primitive section (by unindexed key) to the type
// it decodes into; keys below them are found by reflection.
var sectionTypes = map[string]reflect.Type{
	"":               reflect.TypeFor[rawFile](),
	"node":           reflect.TypeFor[rawNode](),
	"cluster":        reflect.TypeFor[rawCluster](),
	"cluster.member": reflect.TypeFor[rawMember](),
	"cluster.etcd":   reflect.TypeFor[rawEtcd](),
	"vip":            reflect.TypeFor[rawVIP](),
	"vip.check":      reflect.TypeFor[health.CheckConfig](),
	"vip.bgp":        reflect.TypeFor[bgp.RouteAttrs](),
	"vip.ospf":       reflect.TypeFor[bird.RouteAttrs](),
	"routing":        reflect.TypeFor[rawRouting](),
	"routing.bgp":    reflect.TypeFor[rawBGP](),
	"routing.bird":   reflect.TypeFor[rawBird](),
	"dataplane":      reflect.TypeFor[rawDataplane](),
	"timers":         reflect.TypeFor[rawTimers](),
	"api":            reflect.TypeFor[rawAPI](),
}

// tableType returns the Go type the table key decodes into, if known.
func tableType(key toml.Key) (reflect.Type, bool) {
	for n := len(key); n >= 0; n-- {
		t, ok := sectionTypes[key[:n].String()]
		if !ok {
			continue
		}
		for _, seg := range key[n:] {
			ft, ok := fieldType(t, seg)
			if !ok {
				return nil, false
			}
			if ft.Kind() == reflect.Slice {
				ft = deref(ft.Elem())
			}
			t = ft
		}
		return t, t.Kind() == reflect.Struct
	}
	return nil, false
}

// suggest returns the known key closest to the unknown key's last segment,
// within an edit distance of 2, or "".
func suggest(key toml.Key) string {
	if len(key) == 0 {
		return ""
	}
	t, ok := tableType(key[:len(key)-1])
	if !ok {
		return ""
	}
	name := key[len(key)-1]
	best, bestD := "", 3
	for _, f := range tomlFields(t) {
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		if d := editDistance(name, tag); d < bestD {
			best, bestD = tag, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
