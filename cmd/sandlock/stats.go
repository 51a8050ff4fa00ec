package main

import (
	"encoding/json"
	"os"

	"github.com/sandlock/sandlock/supervisor"
)

func writeStats(path string, r *supervisor.Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
