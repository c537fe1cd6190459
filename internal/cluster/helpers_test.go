package cluster

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// closedPort returns a 127.0.0.1 address nothing listens on: a port the
// kernel just handed out and that was closed again.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// checkNoGoroutineLeak fails the test if, once everything registered with
// t.Cleanup after it has run, more goroutines are alive than when it was
// called. Call it first in a test, before starting servers. Goroutines wind
// down asynchronously, so it waits up to a few seconds for the count to drop.
func checkNoGoroutineLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
