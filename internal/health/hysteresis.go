package health

// level is the debounced state of a checked thing.
type level int8

const (
	levelUnknown level = iota // nothing decided yet (peers before rise or fall)
	levelDown
	levelUp
)

// hysteresis debounces a stream of results: the level goes up after rise
// consecutive successes and down after fall consecutive failures. Not safe
// for concurrent use.
type hysteresis struct {
	rise, fall int
	level      level
	oks, fails int // consecutive results of each kind; one of them is 0
}

// observe records one result and reports whether the level changed.
func (h *hysteresis) observe(ok bool) bool {
	if ok {
		h.fails = 0
		if h.oks < h.rise { // capped: only the count up to rise matters
			h.oks++
		}
		if h.level != levelUp && h.oks >= h.rise {
			h.level = levelUp
			return true
		}
		return false
	}
	h.oks = 0
	if h.fails < h.fall {
		h.fails++
	}
	if h.level != levelDown && h.fails >= h.fall {
		h.level = levelDown
		return true
	}
	return false
}
