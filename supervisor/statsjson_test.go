package supervisor

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// marshalReport is what encoding/json makes of r (what --stats wrote).
func marshalReport(t testing.TB, r *Report) string {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestReportJSON checks that AppendJSON is byte for byte
// what encoding/json gives.
func TestReportJSON(t *testing.T) {
	for _, r := range []Report{
		{Notifications: map[string]uint64{}},
		{Notifications: nil, Total: 1},
		{
			Notifications: map[string]uint64{"vfork": 1000, "mmap": 4004, "brk": 1, "rt_sigaction": 1},
			Total:         5006, LatencyP50: 384, LatencyP99: 20480, LatencyMax: 1436088,
			ProcessesStarted: 1001, PeakProcesses: 7, PeakMemory: 667648, ProcessesInUse: 0,
			MemoryInUse: 0, WorkersStarted: 2, PeakRSS: 3989504,
		},
		{
			Notifications: map[string]uint64{"a\"b\\c": 1, "<&>": 2, "\x00\x1f\t\n\r\b\f": 3, "\u2028\u2029é\xff": 4, "": 5},
			Total:         ^uint64(0), LatencyP50: -1, LatencyMax: -1 << 63, ProcessesStarted: ^uint64(0),
			WorkersStarted: -7, PeakRSS: 1<<63 - 1,
		},
	} {
		if diff := cmp.Diff(marshalReport(t, &r), string(r.AppendJSON(nil))); diff != "" {
			t.Errorf("--stats for %+v differs from encoding/json (-json +ours):\n%s", r, diff)
		}
	}
}
