package health

// Level is the debounced state of a checked thing.
type Level int8

// Levels of a Hysteresis.
const (
	LevelUnknown Level = iota // nothing decided yet (peers before rise or fall)
	LevelDown
	LevelUp
)

// Hysteresis debounces a stream of results: the level goes up after Rise
// consecutive successes and down after Fall consecutive failures. The local
// service checks use it, and so does the cluster poller for each member. Not
// safe for concurrent use.
type Hysteresis struct {
	Rise, Fall int
	Level      Level
	oks, fails int // consecutive results of each kind; one of them is 0
}

// Observe records one result and reports whether the level changed.
func (h *Hysteresis) Observe(ok bool) bool {
	if ok {
		h.fails = 0
		if h.oks < h.Rise { // capped: only the count up to rise matters
			h.oks++
		}
		if h.Level != LevelUp && h.oks >= h.Rise {
			h.Level = LevelUp
			return true
		}
		return false
	}
	h.oks = 0
	if h.fails < h.Fall {
		h.fails++
	}
	if h.Level != LevelDown && h.fails >= h.Fall {
		h.Level = LevelDown
		return true
	}
	return false
}
