// Package testenv holds helpers shared by sandlock's tests: skipping a test
// whose kernel feature is missing, except where the environment demands the
// feature, as .ci/run does.
package testenv

import (
	"os"
	"strings"
	"testing"
)

// RequireEnv is the variable that turns kernel-feature skips into failures.
// .ci/run sets it on the machines sandlock is tested on.
const RequireEnv = "SANDLOCK_REQUIRE_KERNEL"

// Require skips t with reason unless ok, or fails it when RequireEnv is set.
func Require(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s (and %s is set, so this is a failure, not a skip)", reason, RequireEnv)
	}
	t.Skip(reason)
}

// Short skips t in -short mode.
func Short(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + why)
	}
}

// Children lists the pids of the test process's children.
func Children() []string {
	var out []string
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

// FDs lists the test process's descriptors as "N->target".
func FDs() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"->"+l)
	}
	return out
}
