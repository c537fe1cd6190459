package statuspage

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
)

// newFakePage returns a handler over a fakeNode with n samples, 5s apart,
// already in its ring.
func newFakePage(t *testing.T, n int) (*Handler, *fakeNode) {
	t.Helper()
	f := &fakeNode{now: t0}
	h := New(f.status, Options{Now: f.clock, Samples: 40})
	for range n {
		if _, err := h.Sample(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.advance(DefaultInterval)
	}
	return h, f
}

func get(t *testing.T, h http.Handler, method string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/status", nil))
	return rec
}

// checkDOM asserts what an operator must be able to read off the page. It
// runs on the server's HTML and on the DOM Chromium built from it.
func checkDOM(t *testing.T, doc *html.Node) {
	t.Helper()
	vips := findAll(doc, hasAttr("data-vip"))
	var addrs []string
	for _, v := range vips {
		addrs = append(addrs, attr(v, "data-vip"))
	}
	if diff := cmp.Diff([]string{"198.51.100.10", "198.51.100.11", "2001:db8:100::10", "198.51.100.12", "203.0.113.7"}, addrs); diff != "" {
		t.Errorf("VIP rows (-want +got)\n%s", diff)
	}
	row := func(addr string) string {
		for _, v := range vips {
			if attr(v, "data-vip") == addr {
				return text(v)
			}
		}
		return ""
	}
	for addr, want := range map[string][]string{
		"198.51.100.10":    {"draining", "advertised", "waiting for idle (drain timeout 60s)", "n2 primary", "n1 secondary", "42s"},
		"198.51.100.11":    {"inactive", "table grace (7s left)", "3m00s"},
		"2001:db8:100::10": {"held", "no IPv6 route back to clients (::/0)"},
		"198.51.100.12":    {"service unhealthy", "last error: setting routes: bgp: path for 198.51.100.12/32 rejected by policy"},
		"203.0.113.7":      {"removed by reload, on its way out"},
	} {
		got := row(addr)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("VIP %s row lacks %q:\n%s", addr, w, got)
			}
		}
	}
	// Facet chips say on or off in their class, so colour is not the only
	// signal (off chips are also struck through).
	var unhealthy *html.Node
	for _, c := range findAll(vips[3], hasAttr("data-facet")) {
		if attr(c, "data-facet") == "healthy" {
			unhealthy = c
		}
	}
	if unhealthy == nil || !strings.Contains(attr(unhealthy, "class"), "bad") {
		t.Errorf("198.51.100.12's healthy chip is not marked bad")
	}

	cur := findAll(doc, func(n *html.Node) bool { return strings.Contains(attr(n, "class"), "step current") })
	if len(cur) != 1 || attr(cur[0], "data-phase") != "draining" {
		t.Errorf("drain steps: want exactly draining current, got %d", len(cur))
	}
	if p := findAll(doc, hasID("progress")); len(p) != 1 || !strings.Contains(text(p[0]), "3 draining") ||
		!strings.Contains(text(p[0]), "2 inactive") || !strings.Contains(text(p[0]), "0 of 5 announced") {
		t.Errorf("drain progress missing or wrong: %q", text(first(p)))
	}
	// The drain's time left, by the timers of the phases it has left.
	if d := text(first(findAll(doc, hasID("drain-left")))); !strings.Contains(d, "node drained 50s ago by vipctl") ||
		!strings.Contains(d, "phase draining for 42s") || !strings.Contains(d, "this step ends within 18s") ||
		!strings.Contains(d, "the drain within 28s") {
		t.Errorf("drain time left missing or wrong: %q", d)
	}
	members := findAll(doc, hasAttr("data-member"))
	if len(members) != 2 || !strings.Contains(text(members[0]), "up") || !strings.Contains(text(members[1]), "down") {
		t.Errorf("members: %d rows", len(members))
	}
	peers := text(first(findAll(doc, hasID("peers"))))
	for _, w := range []string{"192.0.2.1 AS65000", "established", "26h03m", "hold timer expired", "active"} {
		if !strings.Contains(peers, w) {
			t.Errorf("peers section lacks %q: %s", w, peers)
		}
	}
	// Moving counters get a sparkline; idle ones are listed once.
	counters := findAll(doc, hasAttr("data-counter"))
	var names []string
	for _, c := range counters {
		names = append(names, attr(c, "data-counter"))
		if len(findAll(c, isElem("polyline"))) != 1 {
			t.Errorf("counter %s has no sparkline", attr(c, "data-counter"))
		}
	}
	if !slices.Contains(names, "drop_loop_guard") || slices.Contains(names, "drop_no_backend") {
		t.Errorf("counter rows %v: want drop_loop_guard (it moved) and not drop_no_backend (never did)", names)
	}
	if idle := text(first(findAll(doc, hasID("idle")))); !strings.Contains(idle, "drop_no_backend") {
		t.Errorf("idle counters not listed: %q", idle)
	}
	// Read-only and self-contained.
	for _, tag := range []string{"script", "form", "input", "button", "iframe", "link", "img"} {
		if n := findAll(doc, isElem(tag)); len(n) > 0 {
			t.Errorf("the page has a <%s>", tag)
		}
	}
	for _, n := range findAll(doc, func(n *html.Node) bool {
		return attr(n, "src") != "" || attr(n, "href") != "" || attr(n, "action") != ""
	}) {
		t.Errorf("<%s> refers to something outside the page", n.Data)
	}
}

func TestPage(t *testing.T) {
	h, _ := newFakePage(t, 30)
	rec := get(t, h, http.MethodGet)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET: %d", rec.Code)
	}
	hd := rec.Header()
	if !strings.HasPrefix(hd.Get("Content-Type"), "text/html") || hd.Get("Cache-Control") != "no-store" ||
		!strings.Contains(hd.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("headers: %v", hd)
	}
	doc, err := html.Parse(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	checkDOM(t, doc)
}

func TestReadOnly(t *testing.T) {
	h, _ := newFakePage(t, 1)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if rec := get(t, h, m); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d %v", m, rec.Code, rec.Header())
		}
	}
	if rec := get(t, h, http.MethodHead); rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d with %d bytes", rec.Code, rec.Body.Len())
	}
}

func TestStatusErrorShown(t *testing.T) {
	h, f := newFakePage(t, 3)
	f.err = errors.New("controller not started")
	rec := get(t, h, http.MethodGet)
	body := rec.Body.String()
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, "reading status: controller not started") {
		t.Errorf("status error: %d\n%.600s", rec.Code, body)
	}
	// The last good status stays on the page, said to be stale.
	if !strings.Contains(body, "198.51.100.10") || !strings.Contains(body, "last read") {
		t.Errorf("the last good status is not shown with the error")
	}
}

// TestRing: the ring keeps the newest samples only, requests sample only
// when the newest sample is older than the interval, and a counter that
// went backwards counts from zero.
func TestRing(t *testing.T) {
	h, f := newFakePage(t, 50)
	if len(h.ring) != 40 {
		t.Errorf("ring holds %d samples, want 40", len(h.ring))
	}
	newest := h.ring[len(h.ring)-1].at
	get(t, h, http.MethodGet) // newest is 5s old: samples
	if got := h.ring[len(h.ring)-1].at; !got.After(newest) {
		t.Error("a request with a stale ring did not sample")
	}
	calls := f.calls
	get(t, h, http.MethodGet) // same instant: reads, does not record
	if h.ring[len(h.ring)-1].at != f.clock() || f.calls != calls+1 || len(h.ring) != 40 {
		t.Errorf("a fresh ring was sampled again (calls %d -> %d)", calls, f.calls)
	}
	ring := []sample{
		{t0, map[string]uint64{"x": 100}},
		{t0.Add(2 * time.Second), map[string]uint64{"x": 300}},
		{t0.Add(4 * time.Second), map[string]uint64{"x": 50}}, // restarted without pins
	}
	if diff := cmp.Diff([]float64{100, 25}, ratesOf("x", ring)); diff != "" {
		t.Errorf("rates (-want +got)\n%s", diff)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{thousands(0), "0"}, {thousands(999), "999"}, {thousands(1000), "1,000"}, {thousands(1234567), "1,234,567"},
		{perSecond(0), "0/s"}, {perSecond(2.5), "2.5/s"}, {perSecond(42), "42/s"}, {perSecond(12345), "12.3k/s"}, {perSecond(2.5e6), "2.5M/s"},
		{ago(42 * time.Second), "42s"}, {ago(200 * time.Second), "3m20s"}, {ago(5*time.Hour + 12*time.Minute), "5h12m"}, {ago(76 * time.Hour), "3d4h"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// DOM helpers.

func findAll(n *html.Node, pred func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n == nil {
			return
		}
		if n.Type == html.ElementNode && pred(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func first(ns []*html.Node) *html.Node {
	if len(ns) == 0 {
		return nil
	}
	return ns[0]
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(key string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		return slices.ContainsFunc(n.Attr, func(a html.Attribute) bool { return a.Key == key })
	}
}

func hasID(id string) func(*html.Node) bool {
	return func(n *html.Node) bool { return attr(n, "id") == id }
}

func isElem(tag string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == tag }
}

// text is the node's text content with runs of white space collapsed.
func text(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}
