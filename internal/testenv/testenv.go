// Package testenv holds helpers shared by sandlock's tests: skipping a test
// whose kernel feature is missing, except where the environment demands the
// feature, as .ci/run does.
package testenv

import (
	"os"
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
