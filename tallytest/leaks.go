package tallytest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// RunCheckingLeaks runs the tests of m and then fails the run when a goroutine
// whose stack mentions one of suspects is still alive after a few seconds:
// every test must stop what it started. Call it from TestMain.
func RunCheckingLeaks(m *testing.M, suspects ...string) {
	code := m.Run()
	if code == 0 {
		if leaks := leakedGoroutines(suspects, 3*time.Second); leaks != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaks)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits for stray goroutines to end and returns the stacks
// of those still running after timeout.
func leakedGoroutines(suspects []string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaks []string
		for i, g := range strings.Split(string(buf), "\n\n") {
			if i == 0 {
				continue // this goroutine
			}
			for _, s := range suspects {
				if strings.Contains(g, s) {
					leaks = append(leaks, g)
					break
				}
			}
		}
		if len(leaks) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaks, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
