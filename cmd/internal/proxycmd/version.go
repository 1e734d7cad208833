package proxycmd

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// VersionInfo is what the version command prints.
type VersionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// CurrentVersion returns the version of this binary: version and commit
// as the linker set them (commit "" falls back to the VCS revision the go
// command recorded, else "unknown").
func CurrentVersion(version, commit string) VersionInfo {
	c := commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return VersionInfo{Version: version, Commit: c, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}

// NewVersionCmd returns the version command of the binary named binary.
func NewVersionCmd(binary, version, commit string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := CurrentVersion(version, commit)
			switch output {
			case "":
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s (commit %s, %s, %s)\n", binary, v.Version, v.Commit, v.GoVersion, v.Platform)
				return nil
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			default:
				return usage(fmt.Errorf("unknown output format %q: want json", output))
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}
