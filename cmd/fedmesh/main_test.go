package main

import (
	"bytes"
	"context"
	"testing"
)

// runCmd runs a command line as run does, with ctx as the command's
// context, and returns stdout, stderr (with the error's text) and the exit
// code.
func runCmd(ctx context.Context, t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return out.String(), errOut.String(), 0
	}
	errOut.WriteString(err.Error())
	return out.String(), errOut.String(), exitCode(err)
}
