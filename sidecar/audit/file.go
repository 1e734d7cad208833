package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// File is an append-only file that rotates by size: before a write that
// would take it past MaxSize, path becomes path.1, path.1 becomes path.2
// and so on up to path.MaxFiles, whose previous content is dropped, and a
// new path is started. A write is never split across files, so a file
// holds whole lines when every write is whole lines; a single write larger
// than MaxSize goes into a file of its own.
type File struct {
	path     string
	maxSize  int64
	maxFiles int

	mu   sync.Mutex // guards the following
	f    *os.File
	size int64
}

// OpenFile opens (creating it, 0600) path for appending, rotating at
// maxSize bytes (> 0) and keeping maxFiles (>= 0) old files.
func OpenFile(path string, maxSize int64, maxFiles int) (*File, error) {
	if path == "" {
		return nil, errors.New("audit file: empty path")
	}
	if maxSize <= 0 {
		return nil, fmt.Errorf("audit file: max size %d must be positive", maxSize)
	}
	if maxFiles < 0 {
		return nil, fmt.Errorf("audit file: max files %d is negative", maxFiles)
	}
	f := &File{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := f.openLocked(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) openLocked() error {
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return fmt.Errorf("audit file: %w", err)
	}
	f.f, f.size = fh, st.Size()
	return nil
}

// Write appends p, rotating first when p would take the file past its
// maximum size.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return 0, fs.ErrClosed
	}
	if f.size > 0 && f.size+int64(len(p)) > f.maxSize {
		if err := f.rotateLocked(); err != nil {
			return 0, err
		}
	}
	n, err := f.f.Write(p)
	f.size += int64(n)
	return n, err
}

func (f *File) rotateLocked() error {
	if err := f.f.Close(); err != nil {
		return fmt.Errorf("audit file: close before rotation: %w", err)
	}
	f.f = nil
	err := f.shiftLocked()
	// Whatever happened, keep a file open to append to.
	if oerr := f.openLocked(); oerr != nil {
		return errors.Join(err, oerr)
	}
	return err
}

// shiftLocked renames path.i to path.(i+1) from the oldest kept down, and
// path to path.1 (or removes path when no old file is kept).
func (f *File) shiftLocked() error {
	name := func(i int) string { return f.path + "." + strconv.Itoa(i) }
	if f.maxFiles == 0 {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("audit file: rotate: %w", err)
		}
		return nil
	}
	for i := f.maxFiles - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("audit file: rotate: %w", err)
		}
	}
	if err := os.Rename(f.path, name(1)); err != nil {
		return fmt.Errorf("audit file: rotate: %w", err)
	}
	return nil
}

// Close syncs and closes the file. It is idempotent.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	err := errors.Join(f.f.Sync(), f.f.Close())
	f.f = nil
	return err
}
