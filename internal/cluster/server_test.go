package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func testState() NodeState {
	return NodeState{
		Node:       "n1",
		Generation: 7,
		VIPs: map[netip.Addr]VIPState{
			netip.MustParseAddr("192.0.2.10"):   {State: StateActive, Healthy: true},
			netip.MustParseAddr("2001:db8::10"): {State: StateDraining, Healthy: false, Reason: "service unhealthy"},
		},
	}
}

func TestStateHandler(t *testing.T) {
	h := NewHandler(testState)
	wantJSON, err := json.Marshal(testState())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		wantCode     int
		wantBody     string // exact, after trimming the final newline; "" = empty
		wantAllow    string
	}{
		{"GET", "/state", 200, string(wantJSON), ""},
		{"HEAD", "/state", 200, "", ""},
		{"GET", "/healthz", 200, "ok", ""},
		{"HEAD", "/healthz", 200, "", ""},
		{"POST", "/state", 405, "read-only: use GET", "GET, HEAD"},
		{"PUT", "/state", 405, "read-only: use GET", "GET, HEAD"},
		{"DELETE", "/state", 405, "read-only: use GET", "GET, HEAD"},
		{"PATCH", "/healthz", 405, "read-only: use GET", "GET, HEAD"},
		{"GET", "/", 404, "404 page not found", ""},
		{"GET", "/state/", 404, "404 page not found", ""},
		{"GET", "/statex", 404, "404 page not found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Errorf("code = %d, want %d", rec.Code, tt.wantCode)
			}
			if got := strings.TrimSuffix(rec.Body.String(), "\n"); got != tt.wantBody {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if tt.wantCode != 404 {
				if got := rec.Header().Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", got)
				}
			}
			if tt.path == "/state" && tt.wantCode == 200 {
				if got := rec.Header().Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", got)
				}
			}
		})
	}
}

// What the handler serves, the poller's decoder reads back unchanged.
func TestStateRoundTrip(t *testing.T) {
	rec := httptest.NewRecorder()
	NewHandler(testState).ServeHTTP(rec, httptest.NewRequest("GET", "/state", nil))
	got, err := DecodeNodeState(rec.Body.Bytes(), "n1")
	if err != nil {
		t.Fatalf("DecodeNodeState: %v", err)
	}
	want := testState()
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// The getter is called per request: a changed state is served at once.
func TestStateHandlerLive(t *testing.T) {
	gen := uint64(0)
	h := NewHandler(func() NodeState { gen++; return NodeState{Node: "n1", Generation: gen} })
	for want := uint64(1); want <= 3; want++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/state", nil))
		st, err := DecodeNodeState(rec.Body.Bytes(), "n1")
		if err != nil {
			t.Fatal(err)
		}
		if st.Generation != want {
			t.Errorf("generation = %d, want %d", st.Generation, want)
		}
	}
}

func TestServe(t *testing.T) {
	checkNoGoroutineLeak(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, ln, NewHandler(testState)) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	url := "http://" + ln.Addr().String() + "/state"
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := DecodeNodeState(body, "n1"); err != nil {
		t.Errorf("decoding served state: %v", err)
	}
	resp, err = client.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST status %d, want 405", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	client.CloseIdleConnections()
	if _, err := client.Get(url); err == nil {
		t.Errorf("GET after shutdown succeeded; the listener should be closed")
	}
}

func TestListenAndServeError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = ListenAndServe(t.Context(), ln.Addr().String(), NewHandler(testState))
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !strings.HasPrefix(err.Error(), "listening for node state on ") {
		t.Errorf("ListenAndServe on a busy port = %v, want a wrapped listen error", err)
	}
}

func TestListenAndServeByAddress(t *testing.T) {
	checkNoGoroutineLeak(t)
	addr := closedPort(t) // free a moment ago; a race with another process only fails the listen
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ListenAndServe(ctx, addr, NewHandler(testState)) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var resp *http.Response
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		resp, err = client.Get("http://" + addr + "/healthz")
		if err == nil {
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("ListenAndServe returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz status %d, want 200", resp.StatusCode)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("ListenAndServe after cancel = %v, want nil", err)
	}
}
