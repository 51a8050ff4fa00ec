// Package testenv holds helpers shared by sandlock's tests: skipping a test
// whose kernel feature is missing, except where the environment demands the
// feature, as .ci/run does.
package testenv

import (
	"bytes"
	"os"
	"strconv"
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

// Live counts the machine's processes that are not zombies and that match
// accepts, given the pid and the command line (NUL-separated); match nil
// accepts all.
func Live(match func(pid int, cmdline []byte) bool) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if match != nil {
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil || !match(pid, b) {
				continue
			}
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] != 'Z' {
			n++
		}
	}
	return n
}

// ThreadsInSyscall counts this process's threads whose current syscall is
// number nr (from /proc/self/task/*/syscall).
func ThreadsInSyscall(nr int) int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	prefix := strconv.Itoa(nr) + " "
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/syscall")
		if err == nil && strings.HasPrefix(string(b), prefix) {
			n++
		}
	}
	return n
}
