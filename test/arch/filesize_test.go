package arch

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// maxLines is the most lines a hand-written, non-test .go file may have. A
// longer file holds more than one concern; split it by concern (one file
// per feature, as in grpc-go's balancer/priority).
const maxLines = 800

// knownOversize lists files allowed over maxLines for now, by path from the
// module root, each with the condition for deleting its entry.
var knownOversize = map[string]string{}

// generated matches the line that marks a generated file
// (https://go.dev/s/generatedcode).
var generated = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

func TestFileSize(t *testing.T) {
	root := loadModule(t).dir
	sizes, err := goFileLines(root)
	if err != nil {
		t.Fatal(err)
	}
	tests := make([]string, 0, len(sizes))
	for name := range sizes {
		tests = append(tests, name)
	}
	slices.Sort(tests)
	for _, name := range tests {
		lines := sizes[name]
		if lines <= maxLines {
			continue
		}
		if why, ok := knownOversize[name]; ok {
			t.Logf("%s: %d lines, over %d but listed in knownOversize (%s)", name, lines, maxLines, why)
			continue
		}
		t.Errorf("%s: %d lines, more than %d; split it by concern", name, lines, maxLines)
	}
	for name := range knownOversize {
		if lines, ok := sizes[name]; !ok || lines <= maxLines {
			t.Logf("knownOversize entry %s is no longer needed (%d lines); delete it", name, lines)
		}
	}
}

// goFileLines returns the line count of every hand-written, non-test .go
// file of the module at root, by slash-separated path from root. It skips
// what the go command skips (testdata, vendor, directories starting with
// "." or "_") and nested modules.
func goFileLines(root string) (map[string]int, error) {
	sizes := make(map[string]int)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if generated.Match(src) {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		sizes[filepath.ToSlash(rel)] = countLines(src)
		return nil
	})
	return sizes, err
}

// countLines counts lines as wc -l does, plus a last line without a newline.
func countLines(src []byte) int {
	n := bytes.Count(src, []byte("\n"))
	if len(src) > 0 && src[len(src)-1] != '\n' {
		n++
	}
	return n
}
