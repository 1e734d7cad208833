package poll

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestUntil(t *testing.T) {
	var n atomic.Int32
	Until(t, 5*time.Second, "third call", func() error {
		if n.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if got := n.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3", got)
	}
}

func TestUntilTimeout(t *testing.T) {
	f := &fakeTB{}
	var n int
	Until(f, 30*time.Millisecond, "never", func() error { n++; return fmt.Errorf("try %d", n) })
	want := fmt.Sprintf("never: not true after 30ms: try %d", n)
	if f.msg != want {
		t.Errorf("failure %q, want %q", f.msg, want)
	}
}

func TestTrue(t *testing.T) {
	var n atomic.Int32
	True(t, 5*time.Second, "third call", func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3", got)
	}
	f := &fakeTB{}
	True(f, 30*time.Millisecond, "never", func() bool { return false })
	if !strings.HasPrefix(f.msg, "never: not true after 30ms") {
		t.Errorf("failure %q", f.msg)
	}
}
