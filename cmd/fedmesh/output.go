package main

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// printOutput writes v in the format -o asked for: "json", "yaml", or ""
// for the human form that table writes. An unknown format is a usage error
// (exit code 2), as in kubectl.
func printOutput(w io.Writer, format string, v any, table func(io.Writer) error) error {
	switch format {
	case "":
		return table(w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return &exitError{code: 2, err: fmt.Errorf("unknown output format %q: want json or yaml", format)}
}
