package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fedmesh/fedmesh/cmd/internal/proxycmd"
)

// commandLogger returns the logger for a command, built from its root's
// --log-format and --log-level flags (proxycmd.AddLogFlags).
func commandLogger(cmd *cobra.Command) (*slog.Logger, error) {
	return proxycmd.CommandLogger(cmd)
}
