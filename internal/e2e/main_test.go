package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestMain prints how long the package took: its tests build labs of
// namespaces and BIRDs, and `make test` has a budget (scripts/test.sh shows
// this line).
func TestMain(m *testing.M) {
	start := time.Now()
	code := m.Run()
	fmt.Printf("e2e package: %v\n", time.Since(start).Round(time.Second))
	os.Exit(code)
}
