package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMeasureTimeout checks that a run that hangs is killed whole (its
// process group: here a shell and the sleep it waits for) once
// -run-timeout has passed, and reported as failed.
func TestMeasureTimeout(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	e := &env{Dir: dir, RunTimeout: 200 * time.Millisecond}
	wl := &workload{Name: "hang"}
	_, err := measure(wl, e, []string{"/bin/sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $! > " + pidFile + "; wait"})
	if err == nil || !strings.Contains(err.Error(), "run-timeout") {
		t.Fatalf("measure = %v, want the timeout's error", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The sleep was killed with its group; its parent is gone, so init
	// reaps it: wait for it to disappear (or to be a zombie).
	for deadline := time.Now().Add(10 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("sleep (pid %d) still running after the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMeasureNoTimeout checks that a run within the timeout is timed.
func TestMeasureNoTimeout(t *testing.T) {
	e := &env{Dir: t.TempDir(), RunTimeout: time.Minute}
	v, err := measure(&workload{Name: "true"}, e, []string{"/bin/true"})
	if err != nil || v <= 0 {
		t.Fatalf("measure(/bin/true) = %v, %v", v, err)
	}
}

// alive reports whether pid runs (exists and is not a zombie).
func alive(pid int) bool {
	if unix.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// TestMeasureTimeoutDetached checks that a hung run whose child left the
// run's process group (setsid) and keeps its output open is still ended:
// killing the group does not reach that child, and waiting for its pipes
// would last as long as it does.
func TestMeasureTimeoutDetached(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	e := &env{Dir: dir, RunTimeout: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		_, err := measure(&workload{Name: "hang"}, e, []string{"/bin/sh", "-c", "setsid sh -c 'echo $$ > " + pidFile + "; exec sleep 1000' & wait"})
		done <- err
	}()
	defer func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "run-timeout") {
			t.Fatalf("measure = %v, want the timeout's error", err)
		}
	case <-time.After(time.Minute): // a hang, not a timing bound
		t.Fatal("measure still waiting for a detached child's output")
	}
}
