package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeReport holds the given medians: workload -> sandbox -> median.
func fakeReport(medians map[string]map[string]float64) *report {
	r := &report{}
	for wl, sbs := range medians {
		wr := &workloadResult{Workload: &workload{Name: wl}}
		for sb, m := range sbs {
			wr.Results = append(wr.Results, &result{Sandbox: sb, Median: m})
		}
		r.Workloads = append(r.Workloads, wr)
	}
	return r
}

// TestTargetFloors checks that the fork-heavy targets carry refsup-limits's
// value beside sandlock's, and that a missing floor leaves it empty.
func TestTargetFloors(t *testing.T) {
	r := fakeReport(map[string]map[string]float64{
		"spawn-loop":    {"bare": 300, "sandlock-limits": 330, "refsup-limits": 315},
		"spawn-loop-x2": {"bare": 300, "sandlock-limits": 360, "refsup-limits": 330},
		"xargs":         {"bare": 600, "sandlock": 650, "sandlock-limits": 750, "refsup-limits": 660},
	})
	got := map[string][3]string{}
	for _, tg := range evaluate(r) {
		got[tg.Name] = [3]string{tg.Value, tg.Status, tg.Floor}
	}
	want := map[string][3]string{
		"spawn loop, limits on: sandlock / bare": {"1.10x", "met", "1.05x"},
		// Speed-ups: bare 2.00, sandlock 1.83, refsup 1.91.
		"two loops in parallel: speed-up 1.83 vs bare's 2.00": {"0.92x", "met", "0.95x"},
		"parallel spawns (xargs): sandlock / bare":            {"1.08x", "met", ""},
		"parallel spawns (xargs), limits on: sandlock / bare": {"1.25x", "not met", "1.10x"},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, got[name]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}
