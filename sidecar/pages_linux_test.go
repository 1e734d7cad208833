package sidecar

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// written is in the binary's writable data; dropStartupPages must leave
// it alone (MADV_DONTNEED on a private writable mapping would bring back
// the file's contents).
var written = []byte("from the binary")

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("RssFile %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// The binary's read-only mappings leave the process's resident set; its
// data stays as the process wrote it, and its code keeps running.
func TestDropStartupPages(t *testing.T) {
	copy(written, "changed at run")
	want := string(written)
	before := rssFileKiB(t)
	n, err := dropStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKiB(t)
	if n < 1<<20 {
		t.Errorf("advised %d bytes: the test binary's code alone is larger", n)
	}
	if after >= before {
		t.Errorf("RssFile %d KiB before, %d KiB after", before, after)
	}
	if got := string(written); got != want {
		t.Errorf("data written at run time reads %q after the drop", got)
	}
	t.Logf("advised %d MiB; RssFile %d -> %d KiB", n>>20, before, after)
}
