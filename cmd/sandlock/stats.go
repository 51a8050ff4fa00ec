package main

import (
	"os"

	"github.com/sandlock/sandlock/supervisor"
)

// writeStats writes r to path as JSON (Report.AppendJSON).
func writeStats(path string, r *supervisor.Report) error {
	return os.WriteFile(path, r.AppendJSON(nil), 0o644)
}
