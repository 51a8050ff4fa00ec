package supervisor

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWakePolicy replays notification sequences (task, time in ms) and
// checks when the synchronous wake-up would be off.
func TestWakePolicy(t *testing.T) {
	type ev struct {
		tid int32
		ms  float64
	}
	seq := func(pattern []int32, stepMs float64, from float64) []ev {
		var out []ev
		for i, tid := range pattern {
			out = append(out, ev{tid, from + float64(i)*stepMs})
		}
		return out
	}
	repeat := func(p []int32, n int) []int32 {
		var out []int32
		for i := 0; i < n; i++ {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name string
		evs  []ev
		want []bool // off after each event
	}{
		{"one task in a loop", seq(repeat([]int32{10}, 6), 0.01, 1), []bool{false, false, false, false, false, false}},
		{"a shell starting children one after another", seq([]int32{10, 11, 10, 12, 10, 13, 10, 14}, 0.2, 1),
			[]bool{false, false, false, false, false, false, false, false}},
		{"two tasks at once", seq([]int32{10, 11, 10, 11, 10, 11}, 0.5, 1),
			[]bool{false, false, false, false, true, true}},
		{"two loaders mapping at once, microseconds apart", seq(repeat([]int32{10, 11}, 6), 0.01, 1),
			[]bool{false, false, false, false, false, false, false, false, false, false, false, false}},
		{"two tasks each back within the minimum gap", seq([]int32{10, 11, 10, 11, 10, 11}, 0.049, 1),
			[]bool{false, false, false, false, false, false}},
		{"two tasks each back after the minimum gap", seq([]int32{10, 11, 10, 11, 10, 11}, 0.05, 1),
			[]bool{false, false, false, false, true, true}},
		{"two tasks far apart in time", seq([]int32{10, 11, 10, 11, 10, 11}, 6, 1),
			[]bool{false, false, false, false, false, false}},
		{"back on after a quiet spell", append(seq([]int32{10, 11, 10, 11, 10}, 0.5, 1), seq([]int32{10, 10}, 15, 20)...),
			[]bool{false, false, false, false, true, true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p wakePolicy
			var got []bool
			for _, e := range tc.evs {
				got = append(got, p.note(e.tid, int64(e.ms*1e6)))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("off after each notification (-want +got):\n%s", diff)
			}
		})
	}
}
