package supervisor

import (
	"slices"
	"strconv"

	"github.com/sandlock/sandlock/internal/jsonw"
)

// AppendJSON appends r to b as indented JSON and a newline, byte for byte
// what encoding/json's MarshalIndent(r, "", "  ") gives (TestReportJSON):
// sandlock's --stats file, written without encoding/json, which nothing
// else in `sandlock run` needs (every package linked is mapped at each
// launch and unmapped at each exit).
func (r *Report) AppendJSON(b []byte) []byte {
	b = append(b, "{\n  \"notifications\": "...)
	switch {
	case r.Notifications == nil:
		b = append(b, "null"...)
	case len(r.Notifications) == 0:
		b = append(b, "{}"...)
	default:
		names := make([]string, 0, len(r.Notifications))
		for k := range r.Notifications {
			names = append(names, k)
		}
		slices.Sort(names)
		b = append(b, '{')
		for i, k := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n    "...)
			b = jsonw.AppendString(b, k)
			b = append(b, ": "...)
			b = strconv.AppendUint(b, r.Notifications[k], 10)
		}
		b = append(b, "\n  }"...)
	}
	field := func(name string, v int64) {
		b = append(b, ",\n  \""...)
		b = append(b, name...)
		b = append(b, "\": "...)
		b = strconv.AppendInt(b, v, 10)
	}
	b = append(b, ",\n  \"total\": "...)
	b = strconv.AppendUint(b, r.Total, 10)
	field("latency_p50_ns", r.LatencyP50)
	field("latency_p99_ns", r.LatencyP99)
	field("latency_max_ns", r.LatencyMax)
	b = append(b, ",\n  \"processes_started\": "...)
	b = strconv.AppendUint(b, r.ProcessesStarted, 10)
	field("peak_processes", r.PeakProcesses)
	field("peak_memory_bytes", r.PeakMemory)
	field("processes_in_use", r.ProcessesInUse)
	field("memory_in_use_bytes", r.MemoryInUse)
	field("workers_started", int64(r.WorkersStarted))
	field("supervisor_peak_rss_bytes", r.PeakRSS)
	return append(b, "\n}\n"...)
}
